// REFINE: IsoNet's iterative refine as a Nextflow recursion, one task per iteration.
//
// The state is one tuple, [ meta, done, refine_state, subtomo.star, subtomos ], where `done` is
// the number of finished iterations. REFINE_STEP takes one state and emits the next; Nextflow's
// recursion (feature flag nextflow.preview.recursion, set here and in main.nf) feeds it back
// until `iterations` iterations are done. The iteration task stages subtomo.star and subtomos
// and passes their original paths through as values, so every iteration stages extract's own
// files at any depth: no chain of links, no upload of them by each task.
// Because each iteration is a separate cached task whose inputs are the previous task's
// outputs, `-resume` reuses every finished iteration and restarts at the first unfinished one;
// raising --iterations later reuses the finished ones too (a task's script depends only on its
// own iteration number).
//
// Limits of the recursion (Nextflow documentation, "Process and workflow recursion"): the
// recursive workflow's takes and emits must match, the initial value must be a value channel,
// and reduction operators (collect, reduce, toList, ...) inside it make it hang, so REFINE_STEP
// only calls the process and maps its output. A process in a recursion cannot have topic:
// outputs, so ISONET_REFINE_ITERATION writes its version into the state folder.

nextflow.preview.recursion = true

include { ISONET_REFINE_INIT      } from '../../../modules/local/refine_init/main'
include { ISONET_REFINE_ITERATION } from '../../../modules/local/refine_iteration/main'

workflow REFINE_STEP {
    take:
    ch_state    // channel: [ val(meta), val(done), path(refine_state), path(subtomo_star), path(subtomos) ]

    main:
    // the extract outputs also go in as values (not staged) and come back out unchanged
    ISONET_REFINE_ITERATION(ch_state.map { meta, done, state, star, subtomos -> [meta, done, state, star, subtomos, [star, subtomos]] })
    ch_next = ISONET_REFINE_ITERATION.out.state
        .map { meta, done, state, sources -> [meta, done + 1, state, sources[0], sources[1]] }

    emit:
    state = ch_next     // channel: [ val(meta), val(done + 1), path(refine_state), path(subtomo_star), path(subtomos) ]
}

workflow REFINE {
    take:
    ch_subtomos     // channel: [ val(meta), path(subtomo_star), path(subtomos) ]
    ch_pretrained   // channel: [ val(meta), path(model) ] or [ val(meta), [] ]
    iterations      // integer: refine iterations (at least 1)

    main:
    ISONET_REFINE_INIT(ch_subtomos.join(ch_pretrained))

    // the recursion starts from a value channel: .first() makes one of the joined state
    ch_init = ch_subtomos
        .join(ISONET_REFINE_INIT.out.state)
        .map { meta, star, subtomos, state -> [meta, 0, state, star, subtomos] }
        .first()

    // one iteration is one plain call: Nextflow 24.10's recursion never closes its output for
    // .times(1) (its feedback is take(0)), which would leave predict and report waiting forever
    ch_states = iterations > 1
        ? REFINE_STEP.recurse(ch_init).times(iterations)
        : REFINE_STEP(ch_init)

    // the recursion emits the state after every iteration; the last one is the result
    ch_final = ch_states
        .filter { meta, done, state, star, subtomos -> done == iterations }
        .map { meta, done, state, star, subtomos -> [meta, state] }

    emit:
    state = ch_final    // channel: [ val(meta), path(refine_state) ] after `iterations` iterations
}
