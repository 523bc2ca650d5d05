// ISONET_PREPARE_STAR: tomograms.star listing a folder of tomograms (IsoNet's prepare_star).
process ISONET_PREPARE_STAR {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(tomos, stageAs: 'tomograms/*')   // the tomograms (.mrc/.rec)

    output:
    tuple val(meta), path('tomograms.star'), emit: star
    tuple val("${task.process}"), val('isonet-prepare-star'), eval('isonet-prepare-star --version | sed "s/.* //"'), topic: versions, emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    isonet-prepare-star tomograms --output-star tomograms.star ${args}
    """

    stub:
    """
    touch tomograms.star
    """
}
