// ISONET_REPORT: one self-contained HTML report of the run.
// The tomograms.star of the run lies in run/ with the files it names where it names them (the raw
// tomograms beside it, deconv/, mask/, corrected_tomos/); the refine state(s) and the FSC JSONs are
// passed to isonet-report as they were staged (--refine-dir, in half order; --fsc).
process ISONET_REPORT {
    tag "${meta.id}"
    label 'process_low'
    container 'isonet-nf:0.1.0-cpu'

    input:
    tuple val(meta), path(star, stageAs: 'run/*'), path(tomos, stageAs: 'run/*'), path(deconv, stageAs: 'run/deconv/*'), path(masks, stageAs: 'run/mask/*'), path(corrected, stageAs: 'run/corrected_tomos/*'), path(refine, stageAs: 'states/?/*'), path(fsc, stageAs: 'run/fsc/*')

    output:
    tuple val(meta), path('report.html'), emit: html
    tuple val("${task.process}"), val('isonet-report'), eval('set -o pipefail; isonet-report --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def states = [refine].flatten().collect { state -> "--refine-dir '${state}'" }.join(' ')
    def fscs = [fsc].flatten().findAll { f -> f.name.endsWith('.json') }.collect { f -> "--fsc '${f}'" }.join(' ')
    """
    export OMP_NUM_THREADS=${task.cpus}
    export HOME="\${PWD}"
    isonet-report run -o report.html ${states} ${fscs} ${args}
    """

    stub:
    """
    touch report.html
    """
}
