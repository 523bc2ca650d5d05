// ISONET_REFINE_INIT: the refine state the first iteration continues from (iteration 0).
//
// `isonet-refine --until-iter 0` checks the settings and the subtomograms, builds the initial
// network (or loads the pretrained one) and writes model_iter00 and the state of iteration 0,
// so a bad setting fails here in seconds rather than in the first long training task. It gets
// the same ext.args as ISONET_REFINE_ITERATION (conf/modules.config): refine refuses to
// continue a state made with other settings. A pretrained model is kept inside the state under a
// fixed name, so every iteration passes refine the same --pretrained-model.
process ISONET_REFINE_INIT {
    tag "${meta.id}"
    label 'process_gpu'
    container 'isonet-nf:0.1.0-cuda'

    input:
    tuple val(meta), path(star, stageAs: 'subtomo.star'), path(subtomos, stageAs: 'subtomos/*'), path(pretrained)   // pretrained: .keras or []

    output:
    tuple val(meta), path('refine_state'), emit: state
    tuple val("${task.process}"), val('isonet-refine'), eval('set -o pipefail; isonet-refine --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def gpus = task.accelerator ? '' : '--gpus cpu'
    // a GPU task that sees no GPU fails at once instead of training on the CPU for days
    def require_gpu = task.accelerator ? 'export ISONET_REQUIRE_GPU=1' : ''
    def copy_model = pretrained ? "cp -L ${pretrained} refine_state/pretrained_model.keras" : ''
    def use_model = pretrained ? '--pretrained-model refine_state/pretrained_model.keras' : ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    ${require_gpu}
    export HOME="\${PWD}"
    mkdir -p refine_state
    ${copy_model}
    isonet-refine subtomo.star \\
        --result-dir refine_state \\
        --continue \\
        --iterations 1 \\
        --until-iter 0 \\
        --ncpus ${task.cpus} \\
        ${gpus} \\
        ${use_model} \\
        ${args}
    """

    stub:
    def args = task.ext.args ?: ''
    def folders = args.tokenize().contains('--halves') ? 'refine_state/half1 refine_state/half2' : 'refine_state'
    def copy_model = pretrained ? 'touch refine_state/pretrained_model.keras' : ''
    """
    mkdir -p refine_state
    ${copy_model}
    for folder in ${folders}; do
        mkdir -p "\${folder}/checkpoint"
        touch "\${folder}/model_iter00.keras" "\${folder}/refine_state.json"
    done
    """
}
