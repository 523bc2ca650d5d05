// ISONET_EXTRACT: mask-weighted random subtomograms of one tomogram (its one-row STAR), split into two halves.
process ISONET_EXTRACT {
    tag "${meta.id}"
    label 'process_medium'
    container 'isonet-nf:0.1.0-cpu'

    input:
    tuple val(meta), path(star, stageAs: 'input/*'), path(tomos), path(deconv, stageAs: 'deconv/*'), path(masks, stageAs: 'mask/*')

    output:
    // subtomo.star names its files subtomos/<name>.mrc; the refine tasks stage every tomogram's
    // files under subtomos/ so those paths resolve there too
    tuple val(meta), path('subtomo.star'), path('subtomos/*'), emit: subtomos
    tuple val("${task.process}"), val('isonet-extract'), eval('set -o pipefail; isonet-extract --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def source = meta.deconv ? '--use-deconv-tomo' : '--no-use-deconv-tomo'
    """
    export OMP_NUM_THREADS=${task.cpus}
    cp -L ${star} tomograms.star
    isonet-extract tomograms.star --subtomo-folder subtomos --subtomo-star subtomo.star ${source} ${args}
    """

    stub:
    """
    mkdir -p subtomos
    touch subtomos/${meta.id}_000000.mrc subtomo.star
    """
}
