// ISONET_MERGE_STAR: the per-tomogram STARs of the scatter gathered into one (isonet-merge-star):
// subtomogram STARs concatenated in the order given (the plan's), tomogram STARs combined by
// rlnIndex (both halves' predicts give one row). Each STAR is staged in a folder of its own (they
// share a name). The corrected tomograms are staged only for a RELION 5 tomogram set (it checks
// them against the project): [] otherwise. ext.prefix names the STAR written.
process ISONET_MERGE_STAR {
    tag "${meta.id}"
    label 'process_low'
    container 'isonet-nf:0.1.0-cpu'

    input:
    tuple val(meta), path(stars, stageAs: 'input/?/*'), path(corrected, stageAs: 'corrected_tomos/*')

    output:
    tuple val(meta), path("${task.ext.prefix ?: 'merged'}.star"), emit: star
    tuple val(meta), path('relion5_tomograms*.star', arity: '0..*'), emit: relion5
    tuple val("${task.process}"), val('isonet-merge-star'), eval('set -o pipefail; isonet-merge-star --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: 'merged'
    """
    isonet-merge-star ${stars} --output-star ${prefix}.star ${args}
    """

    stub:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: 'merged'
    """
    touch ${prefix}.star
    if [[ "${args}" == *--relion5-folder* ]]; then touch relion5_tomograms.star; fi
    """
}
