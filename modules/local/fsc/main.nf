// ISONET_FSC: gold-standard directional FSC between the two half-corrected versions of a tomogram,
// with the measured-region and missing-wedge curves of its tilt range (meta.tilt_min/tilt_max) or of
// its recorded tilt angles (a .tlt) when it has them.
process ISONET_FSC {
    tag "${meta.id}"
    label 'process_low'
    container 'isonet-nf:0.1.0-cpu'

    input:
    tuple val(meta), path(half1), path(half2), path(mask), path(angles, stageAs: 'tilt_angles/*')   // mask, angles: [] when none

    output:
    tuple val(meta), path('*_fsc.json'), emit: json
    tuple val(meta), path('*_fsc.png'), emit: plot
    tuple val("${task.process}"), val('isonet-fsc'), eval('set -o pipefail; isonet-fsc --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.tomo}"
    def masking = mask ? "--mask ${mask}" : ''
    def wedge = angles ? "--tilt-angles ${angles}" : (meta.tilt_min != null ? "--tilt-min ${meta.tilt_min} --tilt-max ${meta.tilt_max}" : '')
    """
    export OMP_NUM_THREADS=${task.cpus}
    isonet-fsc ${half1} ${half2} -o ${prefix}_fsc.json --plot ${prefix}_fsc.png ${masking} ${wedge} ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.tomo}"
    """
    touch ${prefix}_fsc.json ${prefix}_fsc.png
    """
}
