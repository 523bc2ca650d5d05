// ISONET_MAKE_PHANTOM: a synthetic tomogram with known ground truth (the `test` profile's input).
process ISONET_MAKE_PHANTOM {
    tag "${meta.id}"
    label 'process_low'
    container 'isonet-nf:0.1.0-cpu'

    input:
    val meta                    // map: [ id: run name ]

    output:
    tuple val(meta), path('phantom/tomo.mrc'), emit: tomo
    tuple val(meta), path('phantom/ground_truth.mrc'), path('phantom/labels.mrc'), emit: truth
    tuple val("${task.process}"), val('isonet-make-phantom'), eval('set -o pipefail; isonet-make-phantom --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    isonet-make-phantom phantom ${args}
    """

    stub:
    """
    mkdir -p phantom
    touch phantom/tomo.mrc phantom/ground_truth.mrc phantom/labels.mrc
    """
}
