// ISONET_DECONV: Wiener-like CTF deconvolution of one tomogram (its one-row STAR).
process ISONET_DECONV {
    tag "${meta.id}"
    label 'process_medium'
    container 'isonet-nf:0.1.0-cpu'

    input:
    // the STAR is staged under input/ because the step rewrites it: the copy at the top of the
    // task folder is the one changed, never the staged link into an earlier task
    tuple val(meta), path(star, stageAs: 'input/*'), path(tomos)

    output:
    tuple val(meta), path('tomograms.star'), path('deconv/*'), emit: deconv
    tuple val("${task.process}"), val('isonet-deconv'), eval('set -o pipefail; isonet-deconv --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    cp -L ${star} tomograms.star
    isonet-deconv tomograms.star --deconv-folder deconv ${args}
    """

    stub:
    """
    cp -L ${star} tomograms.star
    mkdir -p deconv
    for tomo in ${tomos}; do case "\${tomo}" in *.mrc|*.rec) touch "deconv/\${tomo}";; esac; done
    """
}
