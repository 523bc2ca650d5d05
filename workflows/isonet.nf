// ISONET: IsoNet's steps wired as a Nextflow DSL2 workflow.
//
//   input folder / tomograms.star / phantom
//     -> prepare_star -> deconv (when a defocus is set) -> make_mask -> extract
//     -> REFINE (one task per iteration, recursive) -> predict (per half with --halves)
//     -> fsc (per tomogram, with --halves) -> report
//
// Every task works on the whole set of tomograms of the run (IsoNet trains one network on the
// subtomograms of all of them), so the meta map is one per run: [ id: run name, deconv: bool ].
// Channels carry the STAR file with the MRC files it names, staged where the STAR expects them:
// raw tomograms beside the STAR (found by name), deconv/, mask/, subtomos/, corrected_tomos/.

include { ISONET_MAKE_PHANTOM } from '../modules/local/make_phantom/main'
include { ISONET_PREPARE_STAR } from '../modules/local/prepare_star/main'
include { ISONET_DECONV       } from '../modules/local/deconv/main'
include { ISONET_MAKE_MASK    } from '../modules/local/make_mask/main'
include { ISONET_EXTRACT      } from '../modules/local/extract/main'
include { ISONET_PREDICT; ISONET_PREDICT as ISONET_PREDICT_HALF1; ISONET_PREDICT as ISONET_PREDICT_HALF2 } from '../modules/local/predict/main'
include { ISONET_FSC          } from '../modules/local/fsc/main'
include { ISONET_REPORT       } from '../modules/local/report/main'
include { REFINE              } from '../subworkflows/local/refine/main'

// true/false from a param given on the command line, in a params file or in a config
def asBool(value) {
    return value instanceof Boolean ? value : value.toString().trim().toLowerCase() in ['true', 'yes', '1']
}

// The rows of the first table of a STAR file (IsoNet's tomograms.star) as maps label -> text.
def starRows(star) {
    def labels = []
    def rows = []
    def part = 'header'
    star.readLines().each { line ->
        def text = line.trim()
        if (part == 'done' || !text || text.startsWith('#')) {
            return
        }
        if (text.startsWith('data_')) {
            part = labels ? 'done' : 'header'
            return
        }
        if (text == 'loop_') {
            part = 'labels'
            return
        }
        if (text.startsWith('_')) {
            def words = text.tokenize()
            labels << words[0].substring(1)
            if (part == 'header' && words.size() > 1) {
                // a one-row table written as "_label value" pairs
                if (!rows) {
                    rows << []
                }
                rows[0] << words[1]
            }
            return
        }
        if (part == 'labels' || part == 'rows') {
            part = 'rows'
            rows << text.tokenize()
        }
    }
    return rows.collect { row -> [labels, row].transpose().collectEntries() }
}

// The tomograms a STAR file names in rlnMicrographName: as IsoNet reads them, relative to the
// launch folder, else relative to the STAR file's folder. One-line errors for what is missing.
def starTomograms(star) {
    def rows = starRows(star)
    if (!rows) {
        error "${star}: no table rows; give a tomograms.star made by prepare_star (or IsoNet)."
    }
    if (!rows[0].containsKey('rlnMicrographName')) {
        error "${star}: no rlnMicrographName column; give a tomograms.star made by prepare_star (or IsoNet)."
    }
    def tomos = rows.collect { row ->
        def name = row.rlnMicrographName
        def candidates = name.startsWith('/') || name.contains('://') ? [file(name)] : [file("${workflow.launchDir}/${name}"), star.parent.resolve(name)]
        def found = candidates.find { candidate -> candidate.exists() }
        if (!found) {
            error "${star}: rlnMicrographName ${name} does not exist (looked in ${candidates.join(' and ')}); fix the path in the STAR file."
        }
        found
    }
    def names = tomos.collect { tomo -> tomo.name }
    def repeated = names.findAll { name -> names.count(name) > 1 }.unique()
    if (repeated) {
        error "${star}: tomograms ${repeated.join(', ')} share a file name; the pipeline stages them side by side, so rename them."
    }
    return tomos
}

workflow ISONET {
    take:
    input   // string: a folder of tomograms (.mrc/.rec) or a tomograms.star; null with phantom
    opts    // map: run_name, outdir, phantom, defocus, skip_deconv, use_deconv_tomo, iterations,
            //      halves, pretrained_model, fsc_use_mask, unet_depth, predict_cube, predict_crop, skip_report

    main:
    def phantom = asBool(opts.phantom)
    def halves = asBool(opts.halves)
    def iterations = opts.iterations.toString().toInteger()
    if (iterations < 1) {
        error "--iterations ${opts.iterations}: refine needs at least one iteration."
    }
    // predict's tiles are checked before hours of refine, by the rules of `isonet predict`
    def tile_step = 1 << opts.unet_depth.toString().toInteger()
    def cube = opts.predict_cube.toString().toInteger()
    def crop = opts.predict_crop.toString().toInteger()
    if (cube < 1 || cube % tile_step || crop % tile_step) {
        error "--predict_cube_size ${cube} / --predict_crop_size ${crop}: both must be positive multiples of ${tile_step} (2^unet_depth); e.g. 96 and 128."
    }
    if (crop < cube + 8 || (crop - cube) % 2) {
        error "--predict_crop_size ${crop}: must be at least --predict_cube_size ${cube} + 8 and differ from it by an even number; use ${cube + 32}."
    }

    // --- input: tomograms and their STAR file --------------------------------------------------
    def star_input = null
    def folder_tomos = []
    def defocus_set = opts.defocus.toString().toDouble() > 0
    if (phantom) {
        if (input) {
            error "--input ${input} and --phantom both given; use one (the phantom replaces the input)."
        }
    }
    else if (!input) {
        error "--input is missing: give a folder of tomograms (.mrc/.rec) or a tomograms.star (or --phantom true for a synthetic test tomogram)."
    }
    else if (input.toString().toLowerCase().endsWith('.star')) {
        star_input = file(input, checkIfExists: true)
        defocus_set = starRows(star_input).any { row -> (row.rlnDefocus ?: '0').toDouble() > 0 }
    }
    else {
        def folder = file(input, checkIfExists: true)
        if (!folder.isDirectory()) {
            error "--input ${input}: neither a folder of tomograms nor a .star file; give one of those."
        }
        folder_tomos = folder.listFiles().findAll { f -> f.name.toLowerCase().endsWith('.mrc') || f.name.toLowerCase().endsWith('.rec') }.sort { f -> f.name }
        if (!folder_tomos) {
            error "--input ${input}: no tomograms (*.mrc or *.rec) in this folder; point to the folder that holds them."
        }
    }

    def run_deconv = defocus_set && !asBool(opts.skip_deconv)
    def meta = [id: opts.run_name, deconv: run_deconv && asBool(opts.use_deconv_tomo)]

    def ch_star = null          // [ meta, tomograms.star, [tomograms] ]
    if (phantom) {
        ISONET_MAKE_PHANTOM(meta)
        ISONET_PREPARE_STAR(ISONET_MAKE_PHANTOM.out.tomo)
        ch_star = ISONET_PREPARE_STAR.out.star.join(ISONET_MAKE_PHANTOM.out.tomo)
    }
    else if (star_input) {
        ch_star = channel.value([meta, star_input, starTomograms(star_input)])
    }
    else {
        ISONET_PREPARE_STAR(channel.value([meta, folder_tomos]))
        ch_star = ISONET_PREPARE_STAR.out.star.map { m, star -> [m, star, folder_tomos] }
    }

    // --- CTF deconvolution, masks, subtomograms ------------------------------------------------
    def ch_deconv = null        // [ meta, star, [tomograms], [deconv tomograms] or [] ]
    if (run_deconv) {
        ISONET_DECONV(ch_star)
        ch_deconv = ch_star
            .join(ISONET_DECONV.out.deconv)
            .map { m, star_in, tomos, star, deconv -> [m, star, tomos, deconv] }
    }
    else {
        ch_deconv = ch_star.map { m, star, tomos -> [m, star, tomos, []] }
    }

    ISONET_MAKE_MASK(ch_deconv)
    ch_masked = ch_deconv       // [ meta, star, [tomograms], [deconv], [masks] ]
        .join(ISONET_MAKE_MASK.out.mask)
        .map { m, star_in, tomos, deconv, star, masks -> [m, star, tomos, deconv, masks] }

    ISONET_EXTRACT(ch_masked)

    // --- refine: one task per iteration ---------------------------------------------------------
    def ch_pretrained = opts.pretrained_model
        ? channel.value([meta, file(opts.pretrained_model, checkIfExists: true)])
        : channel.value([meta, []])
    REFINE(ISONET_EXTRACT.out.subtomos, ch_pretrained, iterations)

    // --- predict (and the gold-standard FSC with --halves) -------------------------------------
    ch_predict_in = ch_masked.map { m, star, tomos, deconv, masks -> [m, star, tomos, deconv] }
    def ch_final_star = null    // [ meta, tomograms.star ] naming the corrected tomograms
    def ch_corrected = null     // [ meta, [corrected tomograms] ]
    def ch_fsc_files = channel.value([])
    if (halves) {
        ch_models = REFINE.out.state
            .map { m, state -> [m, state.resolve('half1/model_final.keras'), state.resolve('half2/model_final.keras')] }
        ISONET_PREDICT_HALF1(
            ch_predict_in.join(ch_models).map { m, star, tomos, deconv, model1, model2 -> [m, star, tomos, deconv, model1] }
        )
        // half 2 continues half 1's STAR, so the final STAR names both halves
        ISONET_PREDICT_HALF2(
            ISONET_PREDICT_HALF1.out.corrected
                .join(ch_predict_in)
                .join(ch_models)
                .map { m, star1, corrected1, star, tomos, deconv, model1, model2 -> [m, star1, tomos, deconv, model2] }
        )
        ch_final_star = ISONET_PREDICT_HALF2.out.corrected.map { m, star, corrected -> [m, star] }
        ch_corrected = ISONET_PREDICT_HALF1.out.corrected
            .join(ISONET_PREDICT_HALF2.out.corrected)
            .map { m, star1, corrected1, star2, corrected2 -> [m, [corrected1, corrected2].flatten()] }

        // one FSC per tomogram: pair <name>_half1_corrected.mrc with <name>_half2_corrected.mrc
        ch_half1 = ISONET_PREDICT_HALF1.out.corrected
            .flatMap { m, star, files -> [files].flatten().collect { f -> [f.name.replaceFirst(/_half1_corrected\.mrc$/, ''), m, f] } }
        ch_half2 = ISONET_PREDICT_HALF2.out.corrected
            .flatMap { m, star, files -> [files].flatten().collect { f -> [f.name.replaceFirst(/_half2_corrected\.mrc$/, ''), f] } }
        ch_masks = ISONET_MAKE_MASK.out.mask
            .flatMap { m, star, files -> [files].flatten().collect { f -> [f.name.replaceFirst(/_mask\.mrc$/, ''), f] } }
        ch_fsc_in = ch_half1
            .join(ch_half2)
            .join(ch_masks, remainder: true)
            .filter { name, m, half1, half2, mask -> half1 != null }
            .map { name, m, half1, half2, mask ->
                [m + [id: "${m.id}:${name}", tomo: name], half1, half2, asBool(opts.fsc_use_mask) && mask ? mask : []]
            }
        ISONET_FSC(ch_fsc_in)
        ch_fsc_files = ISONET_FSC.out.json
            .mix(ISONET_FSC.out.plot)
            .map { m, f -> f }
            .toList()
    }
    else {
        ch_models = REFINE.out.state.map { m, state -> [m, state.resolve('model_final.keras')] }
        ISONET_PREDICT(ch_predict_in.join(ch_models))
        ch_final_star = ISONET_PREDICT.out.corrected.map { m, star, corrected -> [m, star] }
        ch_corrected = ISONET_PREDICT.out.corrected.map { m, star, corrected -> [m, [corrected].flatten()] }
    }

    // --- report -----------------------------------------------------------------------------------
    ch_report = channel.empty()
    if (!asBool(opts.skip_report)) {
        ch_report_in = ch_final_star
            .join(ch_masked.map { m, star, tomos, deconv, masks -> [m, tomos, deconv, masks] })
            .join(ch_corrected)
            .join(REFINE.out.state)
            .combine(ch_fsc_files.map { files -> [files] })
        ISONET_REPORT(ch_report_in)
        ch_report = ISONET_REPORT.out.html
    }

    // --- versions of every step, one file ----------------------------------------------------------
    channel.topic('versions')
        .map { proc, tool, version -> "${tool}: ${version.toString().trim()}" }
        .mix(channel.value("nextflow: ${workflow.nextflow.version}"))
        .unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${opts.outdir}/pipeline_info", sort: true, newLine: true)

    emit:
    star      = ch_final_star    // channel: [ val(meta), path(tomograms.star) ]
    corrected = ch_corrected     // channel: [ val(meta), [ path(corrected tomogram) ] ]
    refine    = REFINE.out.state // channel: [ val(meta), path(refine_state) ]
    report    = ch_report        // channel: [ val(meta), path(report.html) ]
}
