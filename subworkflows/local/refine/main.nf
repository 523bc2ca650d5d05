// REFINE: IsoNet's iterative refine as a Nextflow recursion, one task per iteration.
//
// The state is one tuple, [ meta, done, refine_state, subtomo.star, subtomos ], where `done` is
// the number of finished iterations. REFINE_STEP takes one state and emits the next; Nextflow's
// recursion (feature flag nextflow.preview.recursion, set here and in main.nf) feeds it back
// until `iterations` iterations are done.
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
    ISONET_REFINE_ITERATION(ch_state)
    ch_next = ISONET_REFINE_ITERATION.out.state
        .map { meta, done, state, star, subtomos -> [meta, done + 1, state, star, subtomos] }

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

    ch_states = REFINE_STEP
        .recurse(ch_init)
        .times(iterations)

    // the recursion emits the state after every iteration; the last one is the result
    ch_final = ch_states
        .filter { meta, done, state, star, subtomos -> done == iterations }
        .map { meta, done, state, star, subtomos -> [meta, state] }

    emit:
    state = ch_final    // channel: [ val(meta), path(refine_state) ] after `iterations` iterations
}
