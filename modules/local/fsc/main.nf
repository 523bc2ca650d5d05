// ISONET_FSC: gold-standard directional FSC between the two half-corrected versions of a tomogram.
process ISONET_FSC {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(half1), path(half2), path(mask)   // mask: [] when none

    output:
    tuple val(meta), path('*_fsc.json'), emit: json
    tuple val(meta), path('*_fsc.png'), emit: plot
    tuple val("${task.process}"), val('isonet-fsc'), eval('isonet-fsc --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.tomo}"
    def masking = mask ? "--mask ${mask}" : ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    isonet-fsc ${half1} ${half2} -o ${prefix}_fsc.json --plot ${prefix}_fsc.png ${masking} ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.tomo}"
    """
    touch ${prefix}_fsc.json ${prefix}_fsc.png
    """
}
