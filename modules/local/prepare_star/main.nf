// ISONET_PREPARE_STAR: tomograms.star listing a folder of tomograms (IsoNet's prepare_star).
//
// Two STAR files from the same rows: tomograms.star names the files by bare name (./<file>), as
// the next tasks stage them beside it; published/tomograms.star names the tomograms where they
// live (`source`, the input folder's path or URI), so the published STAR works outside the pipeline.
process ISONET_PREPARE_STAR {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(tomos, stageAs: 'tomograms/*'), val(source)   // the tomograms (.mrc/.rec); their folder

    output:
    tuple val(meta), path('tomograms.star'), emit: star
    tuple val(meta), path('published/tomograms.star'), emit: published
    tuple val("${task.process}"), val('isonet-prepare-star'), eval('isonet-prepare-star --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    isonet-prepare-star tomograms --output-star tomograms.star --named-in . ${args}
    mkdir -p published
    isonet-prepare-star tomograms --output-star published/tomograms.star --named-in '${source}' ${args}
    """

    stub:
    """
    mkdir -p published
    touch tomograms.star published/tomograms.star
    """
}
