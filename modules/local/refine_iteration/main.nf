// ISONET_REFINE_ITERATION: ONE refine iteration, the body of the recursive REFINE sub-workflow.
//
// In: the refine folder after `done` iterations and the subtomograms it trains on; out: the
// refine folder after `done + 1`. The subtomograms are not emitted again as files: `sources`
// (their original paths, a value) goes out as it came in, so every iteration stages extract's
// own files (a re-emitted staged input would be a link to a link, 40 deep at iteration 40, and
// would be uploaded again by every task on object-store work folders). The staged state is a
// link into the previous task and is never written: the task copies it to refine_state/ and runs
// `isonet-refine --continue --until-iter done+1` on the copy, so every iteration is its own
// cached task and `-resume` restarts at the first unfinished one.
//
// No topic: outputs here (Nextflow refuses them in a recursion); the step's version goes into
// refine_state/versions.yml instead.
process ISONET_REFINE_ITERATION {
    tag "${meta.id} iteration ${done + 1}"
    label 'process_gpu'
    container 'isonet-nf:0.1.0-cuda'

    input:
    tuple val(meta), val(done), path(previous, stageAs: 'previous_state'), path(star, stageAs: 'subtomo.star'), path(subtomos, stageAs: 'subtomos/*'), val(sources)

    output:
    tuple val(meta), val(done), path('refine_state'), val(sources), emit: state
    // the new model(s), hard links beside the state: Nextflow publishes a folder output whole,
    // never the files inside it one by one
    tuple val(meta), path('models/**model_iter*.keras'), emit: models

    script:
    def args = task.ext.args ?: ''
    def next = done + 1
    def gpus = task.accelerator ? '' : '--gpus cpu'
    // a GPU task that sees no GPU fails at once instead of training on the CPU for days
    def require_gpu = task.accelerator ? 'export ISONET_REQUIRE_GPU=1' : ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    ${require_gpu}
    export HOME="\${PWD}"

    # a fresh copy of the previous state: the staged one is a link into another task
    cp -rL previous_state refine_state
    pretrained=""
    if [ -f refine_state/pretrained_model.keras ]; then
        pretrained="--pretrained-model refine_state/pretrained_model.keras"
    fi

    isonet-refine subtomo.star \\
        --result-dir refine_state \\
        --continue \\
        --iterations ${next} \\
        --until-iter ${next} \\
        --ncpus ${task.cpus} \\
        ${gpus} \\
        \${pretrained} \\
        ${args}

    # keep only the newest model of each folder (half1/, half2/ with --halves): the older ones
    # were published by their own iteration and would make every copy grow
    find refine_state -type d | while read -r folder; do
        find "\${folder}" -maxdepth 1 -name 'model_iter*.keras' | sort -V | head -n -1 | xargs -r rm -f
    done

    (cd refine_state && find . -name 'model_iter*.keras') | while read -r model; do
        mkdir -p "models/\$(dirname "\${model}")"
        ln "refine_state/\${model}" "models/\${model}" 2>/dev/null || cp "refine_state/\${model}" "models/\${model}"
    done

    isonet-refine --version | sed "s/.* //" | sed "s/^/isonet-refine: /" > refine_state/versions.yml
    """

    stub:
    def args = task.ext.args ?: ''
    def next = String.format('%02d', done + 1)
    def folders = args.tokenize().contains('--halves') ? 'refine_state/half1 refine_state/half2' : 'refine_state'
    """
    echo "isonet-refine ${args}"
    cp -rL previous_state refine_state
    for folder in ${folders}; do
        mkdir -p "\${folder}/checkpoint"
        rm -f "\${folder}"/model_iter*.keras
        touch "\${folder}/model_iter${next}.keras" "\${folder}/model_final.keras" "\${folder}/refine_state.json"
    done
    (cd refine_state && find . -name 'model_iter*.keras') | while read -r model; do
        mkdir -p "models/\$(dirname "\${model}")"
        cp "refine_state/\${model}" "models/\${model}"
    done
    echo "isonet-refine: stub" > refine_state/versions.yml
    """
}
