// ISONET_PREDICT: correct one tomogram (its one-row STAR) with a trained network.
// With --half 1/2 in ext.args it writes <name>_halfN_corrected.mrc and fills rlnCorrectedTomoHalfN.
// The gather (ISONET_MERGE_STAR) writes the RELION 5 tomogram set of all corrected tomograms.
process ISONET_PREDICT {
    tag "${meta.id}"
    label 'process_gpu'
    container 'isonet-nf:0.1.0-cuda'

    input:
    tuple val(meta), path(star, stageAs: 'input/*'), path(tomos), path(deconv, stageAs: 'deconv/*'), path(model)

    output:
    tuple val(meta), path('tomograms.star'), path('corrected_tomos/*.mrc'), emit: corrected
    tuple val("${task.process}"), val('isonet-predict'), eval('set -o pipefail; isonet-predict --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def source = meta.deconv ? '--use-deconv-tomo' : '--no-use-deconv-tomo'
    def gpus = task.accelerator ? '' : '--gpus cpu'
    // a GPU task that sees no GPU fails at once instead of training on the CPU for days
    def require_gpu = task.accelerator ? 'export ISONET_REQUIRE_GPU=1' : ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    ${require_gpu}
    export HOME="\${PWD}"
    cp -L ${star} tomograms.star
    isonet-predict tomograms.star ${model} --output-dir corrected_tomos ${source} ${gpus} ${args}
    """

    stub:
    def args = task.ext.args ?: ''
    def words = args.tokenize()
    def half = words.contains('--half') ? "_half${words[words.indexOf('--half') + 1]}" : ''
    """
    cp -L ${star} tomograms.star
    mkdir -p corrected_tomos
    for tomo in ${tomos}; do case "\${tomo}" in *.mrc|*.rec) touch "corrected_tomos/\${tomo%.*}${half}_corrected.mrc";; esac; done
    """
}
