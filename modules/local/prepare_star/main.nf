// ISONET_PREPARE_STAR: tomograms.star listing a folder of tomograms (IsoNet's prepare_star), or the
// tomograms of a RELION 5 tomograms.star (its tilt angles, CTF and voxel size; docs/relion5.md).
//
// Two STAR files from the same rows: tomograms.star names the files by bare name (./<file>), as
// the next tasks stage them beside it, with every tilt-angle file it names written beside it;
// published/tomograms.star names the tomograms where they live (`source`, the input folder's path
// or URI; a RELION project's own paths) and its .tlt files in published/tilt_angles/, so the
// published STAR works outside the pipeline.
process ISONET_PREPARE_STAR {
    tag "${meta.id}"
    label 'process_low'
    container 'isonet-nf:0.1.0-cpu'

    input:
    // a folder: its tomograms (.mrc/.rec, with any .tlt beside them) and its path; RELION 5: the
    // project folder (staged so a container sees it) and the path of its tomograms.star
    tuple val(meta), path(tomos, stageAs: 'tomograms/*'), val(source)

    output:
    tuple val(meta), path('tomograms.star'), path('*.tlt', arity: '0..*'), emit: star
    tuple val(meta), path('published/tomograms.star'), path('published/tilt_angles/*.tlt', arity: '0..*'), emit: published
    tuple val("${task.process}"), val('isonet-prepare-star'), eval('set -o pipefail; isonet-prepare-star --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def relion = source.toString().endsWith('.star')
    def input = relion ? "'${source}'" : 'tomograms'
    def where = relion ? '' : "--named-in '${source}'"
    """
    isonet-prepare-star ${input} --output-star tomograms.star --named-in . --tilt-folder . ${args}
    mkdir -p published
    isonet-prepare-star ${input} --output-star published/tomograms.star ${where} --tilt-folder tilt_angles ${args}
    """

    stub:
    """
    mkdir -p published/tilt_angles/
    touch tomograms.star published/tomograms.star
    # no *.tlt: a stub reads no tilt angles (both outputs allow none)
    """
}
