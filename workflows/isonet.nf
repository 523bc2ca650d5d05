// ISONET: IsoNet's steps wired as a Nextflow DSL2 workflow, one task per tomogram where the work is
// per tomogram.
//
//   input folder / tomograms.star / phantom
//     -> prepare_star (one task: tomograms.star and the per-tomogram plan, plan.csv)
//     -> per tomogram: deconv (when it has a defocus) -> make_mask -> extract (tomograms that train)
//     -> merge the subtomogram STARs -> REFINE (one task per iteration, recursive; with --halves two
//        recursions side by side, one per half) -> per tomogram: predict (per half with --halves,
//        both at once) -> fsc (per tomogram, with --halves) -> merge the corrected STARs -> report
//
// The plan, written by the package, says everything the workflow needs per tomogram (its files,
// defocus, tilt range, whether it trains and whether it is corrected): the workflow parses no STAR.
// meta is [ id: tomogram name, index, deconv, halves, relion5, trains, corrects, first_half,
// tilt_min, tilt_max ] for a tomogram, [ id: run name, deconv, halves, relion5 ] for the run's
// gathers, plus half: 1|2 for a half's refine and predict.
// Channels carry a STAR file with the MRC files it names, staged where the STAR expects them:
// tomograms beside the STAR (found by name), deconv/, mask/, subtomos/, corrected_tomos/.

include { ISONET_MAKE_PHANTOM } from '../modules/local/make_phantom/main'
include { ISONET_PREPARE_STAR } from '../modules/local/prepare_star/main'
include { ISONET_DECONV       } from '../modules/local/deconv/main'
include { ISONET_MAKE_MASK    } from '../modules/local/make_mask/main'
include { ISONET_EXTRACT      } from '../modules/local/extract/main'
include { ISONET_MERGE_STAR as ISONET_MERGE_SUBTOMOS; ISONET_MERGE_STAR as ISONET_MERGE_CORRECTED } from '../modules/local/merge_star/main'
include { ISONET_PREDICT; ISONET_PREDICT as ISONET_PREDICT_HALF1; ISONET_PREDICT as ISONET_PREDICT_HALF2 } from '../modules/local/predict/main'
include { ISONET_FSC          } from '../modules/local/fsc/main'
include { ISONET_REPORT       } from '../modules/local/report/main'
include { REFINE; REFINE as REFINE_HALF1; REFINE as REFINE_HALF2 } from '../subworkflows/local/refine/main'
include { asBool              } from '../subworkflows/local/utils_isonet/main'

// What the input is: [kind: phantom|star|folder, source (the path the prepare task reads), files (staged
// into it)]. A STAR is prepare-star's to read (RELION 5 or IsoNet, in its own task): the folder it lies
// in is staged so that a container sees it.
def inputPlan(input, opts) {
    if (asBool(opts.phantom)) {
        if (input) {
            error "--input ${input} and --phantom both given; use one (the phantom replaces the input)."
        }
        return [kind: 'phantom']
    }
    if (!input) {
        error "--input is missing: give a folder of tomograms (.mrc/.rec) or a tomograms.star (or --phantom true for a synthetic test tomogram)."
    }
    if (input.toString().toLowerCase().endsWith('.star')) {
        def star = file(input, checkIfExists: true)
        // its relative paths as IsoNet reads them: from the launch folder (else the STAR's own)
        return [kind: 'star', source: star.toString(), files: [star.parent], base: workflow.launchDir.toString()]
    }
    def folder = file(input, checkIfExists: true)
    if (!folder.isDirectory()) {
        error "--input ${input}: neither a folder of tomograms nor a .star file; give one of those."
    }
    def files = files("${folder}/*", type: 'file').findAll { f ->
        def name = f.name.toLowerCase()
        ['.mrc', '.rec', '.tlt', '.rawtlt'].any { suffix -> name.endsWith(suffix) }
    }
    if (!files.any { f -> !f.name.toLowerCase().endsWith('tlt') }) {
        error "--input ${input}: no tomograms (*.mrc or *.rec) in this folder; point to the folder that holds them."
    }
    return [kind: 'folder', source: folder.toUriString(), files: files.sort { f -> f.name }, base: '']
}

// A file of the plan: the staged input of that name (a phantom, a folder's tomogram), else the path itself.
def planFile(path, staged) {
    return path ? (staged[file(path).name] ?: file(path)) : null
}

// A plan row as the tomogram's meta and files: its one-row STAR and the files it names (the tomogram,
// its raw halves, its tilt angles), looked up among the prepare task's outputs and the staged inputs.
def tomogramTask(run, row, stars, tilts, staged, opts) {
    def deconv = row.defocus.toDouble() > 0 && !asBool(opts.skip_deconv)
    def meta = run + [
        id: row.id, index: row.index.toInteger(), run: run.id,
        run_deconv: deconv, deconv: deconv && asBool(opts.use_deconv_tomo),
        relion5: row.relion5 == 'true', trains: row.trains == 'true', corrects: row.corrects == 'true',
        first_half: row.first_half.toInteger(),
        tilt_min: row.tilt_min.toDouble(), tilt_max: row.tilt_max.toDouble(),
    ]
    def halves = asBool(opts.noise2noise) ? [planFile(row.half1, staged), planFile(row.half2, staged)].findAll { f -> f } : []
    def angles = row.tilt_angles ? [tilts.find { f -> f.name == row.tilt_angles }] : []
    return [meta, stars.find { f -> f.name == row.star }, [planFile(row.tomogram, staged)] + halves + angles, angles]
}

// The inputs of one FSC: a tomogram's two corrected halves, its mask ([] when none or unused), its tilt angles ([]).
def fscInput(meta, half1, half2, mask, angles, use_mask) {
    return [meta + [tomo: meta.id], half1, half2, use_mask ? mask : [], angles]
}

workflow ISONET {
    take:
    input   // string: a folder of tomograms (.mrc/.rec) or a tomograms.star; null with phantom
    opts    // map: the pipeline's params (nextflow.config), checked against nextflow_schema.json

    main:
    // (a `def` may not name a take: that an earlier line used: Nextflow's check of workflow
    // bodies takes it for a redeclaration, so `plan` comes first)
    def plan = inputPlan(input, opts)
    if (opts.iterations.toString().toInteger() < 1) {
        error "--iterations ${opts.iterations}: refine needs at least one iteration."
    }
    def halves = asBool(opts.halves)
    def model = opts.model ? file(opts.model, checkIfExists: true) : null
    if (model && halves) {
        error "--model ${opts.model} and --halves both given: --halves trains two networks; correct with one model, or train with --halves."
    }
    def run = [id: opts.run_name, halves: halves, deconv: asBool(opts.use_deconv_tomo)]

    // --- input: tomograms.star and the per-tomogram plan --------------------------------------------
    def staged = [:]                      // file name -> the file staged into prepare (phantom, folder)
    ch_prepare_in = Channel.empty()
    if (plan.kind == 'phantom') {
        ISONET_MAKE_PHANTOM(run)
        // named relative to the published STAR (star/ beside phantom/), so the task's cache key
        // does not depend on --outdir and a resume into another outdir reuses it
        ch_prepare_in = ISONET_MAKE_PHANTOM.out.tomo.map { m, tomo -> [m, tomo, '../phantom', ''] }
    }
    else {
        staged = plan.kind == 'folder' ? plan.files.collectEntries { f -> [f.name, f] } : [:]
        ch_prepare_in = Channel.value([run, plan.files, plan.source, plan.base])
    }
    ISONET_PREPARE_STAR(ch_prepare_in)

    // one item per tomogram: [ meta, its STAR, [tomogram, raw halves (noise2noise), tilt angles], [tilt angles] ]
    ch_phantom = plan.kind == 'phantom' ? ISONET_MAKE_PHANTOM.out.tomo.map { m, tomo -> [tomo] } : Channel.value([])
    ch_tomograms = ISONET_PREPARE_STAR.out.plan
        .combine(ch_phantom.map { files -> [files] })
        .flatMap { m, csv, stars, tilts, phantom ->
            def names = staged + [phantom].flatten().collectEntries { f -> [f.name, f] }
            csv.splitCsv(header: true)
                .collect { row -> tomogramTask(run + [relion5: row.relion5 == 'true'], row, [stars].flatten(), [tilts].flatten(), names, opts) }
                .findAll { task -> task[0].trains || task[0].corrects }
        }
    ch_tomo_star = ch_tomograms.map { m, star, files, angles -> [m, star, files] }
    ch_angles = ch_tomograms.map { m, star, files, angles -> [m, angles] }

    // --- per tomogram: CTF deconvolution, mask, subtomograms -------------------------------------------
    ch_by_deconv = ch_tomo_star.branch { m, star, files -> deconv: m.run_deconv; raw: true }
    ISONET_DECONV(ch_by_deconv.deconv)
    ch_deconv = ch_by_deconv.deconv     // [ meta, star, [tomogram files], [deconvolved] or [] ]
        .join(ISONET_DECONV.out.deconv)
        .map { m, star_in, files, star, deconv -> [m, star, files, deconv] }
        .mix(ch_by_deconv.raw.map { m, star, files -> [m, star, files, []] })

    ISONET_MAKE_MASK(ch_deconv)
    ch_masked = ch_deconv       // [ meta, star, [tomogram files], [deconv], [mask] ]
        .join(ISONET_MAKE_MASK.out.mask)
        .map { m, star_in, files, deconv, star, mask -> [m, star, files, deconv, mask] }

    // --- refine: on the subtomograms of the tomograms that train, gathered in the plan's order ------------
    ch_states = Channel.empty()         // [ meta (with half), refine state ], one per network
    if (!model) {
        ISONET_EXTRACT(ch_masked.filter { m, star, files, deconv, mask -> m.trains })
        ISONET_MERGE_SUBTOMOS(
            ISONET_EXTRACT.out.subtomos
                .toSortedList { a, b -> a[0].index <=> b[0].index }
                .map { items -> [run, items.collect { item -> item[1] }, []] }
        )
        ch_subtomos = ISONET_MERGE_SUBTOMOS.out.star     // [ run meta, subtomo.star, [every subtomogram] ]
            .combine(ISONET_EXTRACT.out.subtomos.map { m, star, files -> files }.flatten().toSortedList { a, b -> a.name <=> b.name }.map { files -> [files] })
        def iterations = opts.iterations.toString().toInteger()
        def pretrained = opts.pretrained_model ? file(opts.pretrained_model, checkIfExists: true) : []
        if (halves) {
            // two independent recursions, one per half network: they run side by side
            def half1 = run + [half: 1]
            def half2 = run + [half: 2]
            REFINE_HALF1(ch_subtomos.map { m, star, files -> [half1, star, files] }, Channel.value([half1, pretrained]), iterations)
            REFINE_HALF2(ch_subtomos.map { m, star, files -> [half2, star, files] }, Channel.value([half2, pretrained]), iterations)
            ch_states = REFINE_HALF1.out.state.mix(REFINE_HALF2.out.state)
        }
        else {
            REFINE(ch_subtomos, Channel.value([run, pretrained]), iterations)
            ch_states = REFINE.out.state
        }
    }

    // --- per tomogram: predict (each half's network, side by side, with --halves) and the FSC ------------
    ch_predict_in = ch_masked
        .filter { m, star, files, deconv, mask -> m.corrects }
        .map { m, star, files, deconv, mask -> [m, star, files, deconv] }
    ch_tomo_corrected = Channel.empty()     // [ meta, STAR naming its corrected file(s), [corrected tomograms] ]
    ch_fsc_files = Channel.value([])
    if (halves) {
        ch_model1 = ch_states.filter { m, state -> m.half == 1 }.map { m, state -> state.resolve('model_final.keras') }
        ch_model2 = ch_states.filter { m, state -> m.half == 2 }.map { m, state -> state.resolve('model_final.keras') }
        ISONET_PREDICT_HALF1(ch_predict_in.combine(ch_model1))
        ISONET_PREDICT_HALF2(ch_predict_in.combine(ch_model2))
        ch_tomo_corrected = ISONET_PREDICT_HALF1.out.corrected.mix(ISONET_PREDICT_HALF2.out.corrected)

        // one FSC per tomogram: its two corrected halves, its mask and wedge
        ch_fsc_in = ISONET_PREDICT_HALF1.out.corrected
            .join(ISONET_PREDICT_HALF2.out.corrected)
            .join(ch_masked.map { m, star, files, deconv, mask -> [m, mask] })
            .join(ch_angles)
            .map { m, star1, half1, star2, half2, mask, angles -> fscInput(m, half1, half2, mask, angles, asBool(opts.fsc_use_mask)) }
        ISONET_FSC(ch_fsc_in)
        ch_fsc_files = ISONET_FSC.out.json
            .mix(ISONET_FSC.out.plot)
            .map { m, f -> f }
            .toList()
    }
    else {
        ch_model = model ? Channel.value(model) : ch_states.map { m, state -> state.resolve('model_final.keras') }
        ISONET_PREDICT(ch_predict_in.combine(ch_model))
        ch_tomo_corrected = ISONET_PREDICT.out.corrected
    }

    // --- gather: the run's tomograms.star (RELION 5 input: also its tomogram set), then the report ---------
    ISONET_MERGE_CORRECTED(
        ch_tomo_corrected
            .toSortedList { a, b -> a[0].index <=> b[0].index ?: (a[0].half ?: 0) <=> (b[0].half ?: 0) }
            .map { items ->
                def relion5 = items.any { item -> item[0].relion5 }
                [run + [relion5: relion5], items.collect { item -> item[1] }, relion5 ? items.collectMany { item -> [item[2]].flatten() } : []]
            }
    )
    ch_final_star = ISONET_MERGE_CORRECTED.out.star.map { m, star -> [run, star] }
    ch_corrected = ch_tomo_corrected.map { m, star, corrected -> corrected }.flatten().toList().map { files -> [run, files] }

    ch_report = Channel.empty()
    if (!asBool(opts.skip_report)) {
        ch_gathered = ch_masked
            .filter { m, star, files, deconv, mask -> m.corrects }
            .toList()
            .map { items -> [run,
                             items.collectMany { item -> [item[2]].flatten() }.unique(),
                             items.collectMany { item -> [item[3]].flatten() },
                             items.collectMany { item -> [item[4]].flatten() }] }
        ch_refine_states = model
            ? Channel.value([[]])
            : ch_states.toSortedList { a, b -> (a[0].half ?: 0) <=> (b[0].half ?: 0) }.map { items -> [items.collect { item -> item[1] }] }
        ch_report_in = ch_final_star
            .join(ch_gathered)
            .join(ch_corrected)
            .combine(ch_refine_states)
            .combine(ch_fsc_files.map { files -> [files] })
        ISONET_REPORT(ch_report_in)
        ch_report = ISONET_REPORT.out.html
    }

    // --- versions of every step, one file ----------------------------------------------------------
    Channel.topic('versions')
        .map { proc, tool, version -> "${tool}: ${version.toString().trim()}".toString() }
        .mix(Channel.value("nextflow: ${workflow.nextflow.version}".toString()))   // plain strings: a GString holding a VersionNumber cannot be serialised
        .unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${opts.outdir}/pipeline_info", sort: true, newLine: true)

    emit:
    star      = ch_final_star    // channel: [ val(meta), path(tomograms.star) ]
    corrected = ch_corrected     // channel: [ val(meta), [ path(corrected tomogram) ] ]
    refine    = ch_states        // channel: [ val(meta), path(refine_state) ], one per network (none with --model)
    report    = ch_report        // channel: [ val(meta), path(report.html) ]
}
