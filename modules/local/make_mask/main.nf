// ISONET_MAKE_MASK: a mask per tomogram that keeps the sample and leaves out empty ice.
process ISONET_MAKE_MASK {
    tag "${meta.id}"
    label 'process_medium'
    container 'isonet-nf:0.1.0-cpu'

    input:
    // deconvolved tomograms (empty list when deconv did not run) keep the folder the STAR names
    tuple val(meta), path(star, stageAs: 'input/*'), path(tomos), path(deconv, stageAs: 'deconv/*')

    output:
    tuple val(meta), path('tomograms.star'), path('mask/*_mask.mrc'), emit: mask
    tuple val("${task.process}"), val('isonet-make-mask'), eval('set -o pipefail; isonet-make-mask --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def source = meta.deconv ? '--use-deconv-tomo' : '--no-use-deconv-tomo'
    """
    export OMP_NUM_THREADS=${task.cpus}
    cp -L ${star} tomograms.star
    isonet-make-mask tomograms.star --mask-folder mask ${source} ${args}
    """

    stub:
    """
    cp -L ${star} tomograms.star
    mkdir -p mask
    for tomo in ${tomos}; do case "\${tomo}" in *.mrc|*.rec) touch "mask/\${tomo%.*}_mask.mrc";; esac; done
    """
}
