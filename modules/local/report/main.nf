// ISONET_REPORT: one self-contained HTML report of the run.
// The run folder is laid out as the pipeline publishes it: run/tomograms.star beside the raw
// tomograms, run/deconv/, run/mask/, run/corrected_tomos/, run/refine/ and run/fsc/.
process ISONET_REPORT {
    tag "${meta.id}"
    label 'process_low'
    container 'isonet-nf:0.1.0-cpu'

    input:
    tuple val(meta), path(star, stageAs: 'run/tomograms.star'), path(tomos, stageAs: 'run/*'), path(deconv, stageAs: 'run/deconv/*'), path(masks, stageAs: 'run/mask/*'), path(corrected, stageAs: 'run/corrected_tomos/*'), path(refine, stageAs: 'states/?/*'), path(fsc, stageAs: 'run/fsc/*')

    output:
    tuple val(meta), path('report.html'), emit: html
    tuple val("${task.process}"), val('isonet-report'), eval('set -o pipefail; isonet-report --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    // the refine state, or the two halves' states (in half order), where the report looks for them
    def states = [refine].flatten()
    def link = !states ? '' : meta.halves
        ? "mkdir -p run/refine && ln -s ../../states/1/${states[0].name} run/refine/half1 && ln -s ../../states/2/${states[1].name} run/refine/half2"
        : "ln -s ../states/1/${states[0].name} run/refine"
    """
    export OMP_NUM_THREADS=${task.cpus}
    export HOME="\${PWD}"
    ${link}
    isonet-report run -o report.html ${args}
    """

    stub:
    """
    touch report.html
    """
}
