// ISONET: IsoNet's steps wired as a Nextflow DSL2 workflow.
//
//   input folder / tomograms.star / phantom
//     -> prepare_star -> deconv (when a defocus is set) -> make_mask -> extract
//     -> REFINE (one task per iteration, recursive) -> predict (per half with --halves)
//     -> fsc (per tomogram, with --halves) -> report
//
// Every task works on the whole set of tomograms of the run (IsoNet trains one network on the
// subtomograms of all of them), so the meta map is one per run: [ id: run name, deconv: bool, halves: bool,
// relion5: bool (the input is a RELION 5 tomograms.star) ].
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
include { asBool              } from '../subworkflows/local/utils_isonet/main'

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
    // each tomogram, and its raw halves where the row names them (extract --noise2noise cuts from those)
    def columns = ['rlnMicrographName', 'rlnTomoReconstructedTomogramHalf1', 'rlnTomoReconstructedTomogramHalf2']
    def tomos = rows.collectMany { row ->
        columns.findAll { column -> row[column] && row[column] != 'None' }.collect { column ->
            def name = row[column]
            def candidates = name.startsWith('/') || name.contains('://') ? [file(name)] : [file("${workflow.launchDir}/${name}"), star.parent.resolve(name)]
            def found = candidates.find { candidate -> candidate.exists() }
            if (!found) {
                error "${star}: ${column} ${name} does not exist (looked in ${candidates.join(' and ')}); fix the path in the STAR file."
            }
            found
        }
    }
    return uniqueNames(star, tomos)
}

// Files the tasks stage side by side must have distinct names.
def uniqueNames(star, tomos) {
    def names = tomos.collect { tomo -> tomo.name }
    def repeated = names.findAll { name -> names.count(name) > 1 }.unique()
    if (repeated) {
        error "${star}: tomograms ${repeated.join(', ')} share a file name; the pipeline stages them side by side, so rename them."
    }
    return tomos
}

// A RELION 5 tomograms.star: a data_global block with rlnTomoName (as prepare-star detects it).
def isRelion5Star(star) {
    def block = null
    return star.readLines().any { line ->
        def words = line.trim().tokenize()
        if (words && words[0].startsWith('data_')) {
            block = words[0].substring(5)
        }
        return words && block == 'global' && words[0] == '_rlnTomoName'
    }
}

// RELION writes paths relative to its project folder: the nearest folder at or above the STAR's
// where the first tilt-series STAR exists (as io/relion5.py finds it).
def relionProject(star, rows) {
    def series = rows[0].rlnTomoTiltSeriesStarFile
    if (!series || series.startsWith('/')) {
        return star.parent
    }
    def folder = star.toAbsolutePath().parent
    while (folder != null && !folder.resolve(series).exists()) {
        folder = folder.parent
    }
    if (folder == null) {
        error "${star}: rlnTomoTiltSeriesStarFile ${series} is not under ${star.parent} nor any folder above it; give the tomograms.star inside its RELION project."
    }
    return folder
}

// The files of a RELION 5 project the later tasks stage beside the STAR: each tomogram and its raw halves.
def relionTomograms(star, rows, project) {
    def columns = ['rlnTomoReconstructedTomogram', 'rlnTomoReconstructedTomogramHalf1', 'rlnTomoReconstructedTomogramHalf2']
    def tomos = rows.collectMany { row ->
        columns.findAll { column -> row[column] && row[column] != 'None' }.collect { column ->
            def name = row[column]
            def found = name.startsWith('/') ? file(name) : project.resolve(name)
            if (!found.exists()) {
                error "${star}: ${column} ${name} does not exist in the RELION project ${project}; rerun the Reconstruct tomograms job or fix the path."
            }
            found
        }
    }
    return uniqueNames(star, tomos)
}

// What a RELION 5 tomograms.star gives: its project and files; prepare-star reads the rest in a task.
def relionPlan(star, opts) {
    def rows = starRows(star)
    def chosen = tomoIndices(opts.tomo_idx)
    if (chosen != null && !(1..rows.size()).any { index -> index in chosen }) {
        error "--tomo_idx ${opts.tomo_idx}: selects none of the ${rows.size()} tomograms of ${star} (rlnIndex 1..${rows.size()} in its order); give indices that exist."
    }
    def project = relionProject(star, rows)
    // RELION's CTF estimation gives every tomogram a defocus: deconv runs unless --skip_deconv
    return [kind: 'relion5', star: star, project: project, tomos: relionTomograms(star, rows, project), defocus_set: true]
}

// rlnIndex values chosen by IsoNet's --tomo_idx syntax ("1,2,4" or "5-10,15"); null: all.
def tomoIndices(spec) {
    if (spec == null || spec.toString().trim() in ['', 'None', 'all']) {
        return null
    }
    def chosen = [] as Set
    spec.toString().replace(' ', '').tokenize(',').each { part ->
        def range = part =~ /^(-?\d+)-(-?\d+)$/
        if (range.matches()) {
            chosen.addAll((range.group(1).toInteger())..(range.group(2).toInteger()))
        }
        else {
            chosen << part.toInteger()
        }
    }
    return chosen
}

// What the input is and what comes of it: [kind: phantom|star|relion5|folder, star, tomos, folder, defocus_set].
// Deconv runs when a selected tomogram (--tomo_idx) has a defocus: the steps skip the others.
def inputPlan(input, opts) {
    if (asBool(opts.phantom)) {
        if (input) {
            error "--input ${input} and --phantom both given; use one (the phantom replaces the input)."
        }
        return [kind: 'phantom', defocus_set: opts.defocus.toString().toDouble() > 0]
    }
    if (!input) {
        error "--input is missing: give a folder of tomograms (.mrc/.rec) or a tomograms.star (or --phantom true for a synthetic test tomogram)."
    }
    if (input.toString().toLowerCase().endsWith('.star')) {
        def star = file(input, checkIfExists: true)
        if (isRelion5Star(star)) {
            return relionPlan(star, opts)
        }
        def chosen = tomoIndices(opts.tomo_idx)
        def rows = starRows(star).findAll { row -> chosen == null || (row.rlnIndex ?: '0').toInteger() in chosen }
        if (!rows) {
            error "--tomo_idx ${opts.tomo_idx}: selects no row of ${star} (its rlnIndex values); give indices that exist."
        }
        def defocus = rows.any { row -> (row.rlnDefocus ?: '0').toDouble() > 0 }
        return [kind: 'star', star: star, tomos: starTomograms(star), defocus_set: defocus]
    }
    def folder = file(input, checkIfExists: true)
    if (!folder.isDirectory()) {
        error "--input ${input}: neither a folder of tomograms nor a .star file; give one of those."
    }
    def tomos = files("${folder}/*", type: 'file')
        .findAll { f -> f.name.toLowerCase().endsWith('.mrc') || f.name.toLowerCase().endsWith('.rec') }
        .sort { f -> f.name }
    if (!tomos) {
        error "--input ${input}: no tomograms (*.mrc or *.rec) in this folder; point to the folder that holds them."
    }
    // tilt angles beside the tomograms (<stem>.tlt, IMOD/AreTomo): prepare-star reads them
    def tilts = files("${folder}/*", type: 'file').findAll { f -> f.name.endsWith('.tlt') || f.name.endsWith('.rawtlt') }
    return [kind: 'folder', folder: folder, tomos: tomos, tilts: tilts, defocus_set: opts.defocus.toString().toDouble() > 0]
}

// predict's tiles are checked before hours of refine, by the rules of `isonet predict`
def checkPredictTiles(opts) {
    def tile_step = 1 << opts.unet_depth.toString().toInteger()
    def cube = opts.predict_cube_size.toString().toInteger()
    def crop = opts.predict_crop_size.toString().toInteger()
    if (cube < 1 || cube % tile_step || crop % tile_step) {
        error "--predict_cube_size ${cube} / --predict_crop_size ${crop}: both must be positive multiples of ${tile_step} (2^unet_depth); e.g. 96 and 128."
    }
    if (crop < cube + 8 || (crop - cube) % 2) {
        error "--predict_crop_size ${crop}: must be at least --predict_cube_size ${cube} + 8 and differ from it by an even number; use ${cube + 32}."
    }
}

// One FSC input per tomogram: its two half-corrected files, its mask ([] when none or unused) and
// its wedge from the predict STAR's row: the tilt range in meta, the tilt-angle file when the row
// names one that lies beside that STAR ([] otherwise).
def fscInputs(meta, star, half1_files, half2_files, mask_files, use_mask) {
    def stem = { f, suffix -> f.name.replaceFirst(suffix, '') }
    def half2 = [half2_files].flatten().collectEntries { f -> [stem(f, /_half2_corrected\.mrc$/), f] }
    def masks = [mask_files].flatten().collectEntries { f -> [stem(f, /_mask\.mrc$/), f] }
    def rows = starRows(star)
    return [half1_files].flatten().findAll { f -> half2.containsKey(stem(f, /_half1_corrected\.mrc$/)) }.collect { f ->
        def name = stem(f, /_half1_corrected\.mrc$/)
        def row = rows.find { r -> (r.rlnCorrectedTomoHalf1 ?: '').tokenize('/').last() == f.name } ?: [:]
        def wedge = row.rlnTiltMin && row.rlnTiltMax ? [tilt_min: row.rlnTiltMin.toDouble(), tilt_max: row.rlnTiltMax.toDouble()] : [:]
        def named = row.rlnTiltAngleFile && row.rlnTiltAngleFile != 'None' ? row.rlnTiltAngleFile : null
        def angles = named ? (named.startsWith('/') ? file(named) : star.parent.resolve(named)) : null
        [meta + [id: "${meta.id}:${name}", tomo: name] + wedge, f, half2[name],
         use_mask && masks[name] ? masks[name] : [], angles && angles.exists() ? angles : []]
    }
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
    checkPredictTiles(opts)
    def halves = asBool(opts.halves)
    def run_deconv = plan.defocus_set && !asBool(opts.skip_deconv)
    // relion5: predict also writes the corrected tomograms as a RELION 5 tomograms.star (docs/relion5.md)
    def meta = [id: opts.run_name, deconv: run_deconv && asBool(opts.use_deconv_tomo), halves: halves, relion5: plan.kind == 'relion5']

    // --- input: tomograms and their STAR file ([ meta, tomograms.star, [tomograms and the .tlt files it names] ])
    ch_star = Channel.empty()
    if (plan.kind == 'phantom') {
        ISONET_MAKE_PHANTOM(meta)
        // named relative to the published STAR (star/ beside phantom/), so the task's cache key
        // does not depend on --outdir and a resume into another outdir reuses it
        ISONET_PREPARE_STAR(ISONET_MAKE_PHANTOM.out.tomo.map { m, tomo -> [m, tomo, '../phantom'] })
        ch_star = ISONET_PREPARE_STAR.out.star
            .join(ISONET_MAKE_PHANTOM.out.tomo)
            .map { m, star, tilts, tomo -> [m, star, tomo] }
    }
    else if (plan.kind == 'star') {
        ch_star = Channel.value([meta, plan.star, plan.tomos])
    }
    else if (plan.kind == 'relion5') {
        // prepare-star reads the project (tilt series, CTF, voxel size) from the STAR where it lies;
        // the project folder is staged so that a container sees it
        ISONET_PREPARE_STAR(Channel.value([meta, [plan.project], plan.star.toString()]))
        ch_star = ISONET_PREPARE_STAR.out.star.map { m, star, tilts -> [m, star, plan.tomos + [tilts].flatten()] }
    }
    else {
        ISONET_PREPARE_STAR(Channel.value([meta, plan.tomos + plan.tilts, plan.folder.toUriString()]))
        ch_star = ISONET_PREPARE_STAR.out.star.map { m, star, tilts -> [m, star, plan.tomos + [tilts].flatten()] }
    }

    // --- CTF deconvolution, masks, subtomograms ------------------------------------------------
    ch_deconv = Channel.empty()     // [ meta, star, [tomograms], [deconv tomograms] or [] ]
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
    ch_pretrained = opts.pretrained_model
        ? Channel.value([meta, file(opts.pretrained_model, checkIfExists: true)])
        : Channel.value([meta, []])
    REFINE(ISONET_EXTRACT.out.subtomos, ch_pretrained, opts.iterations.toString().toInteger())

    // --- predict (and the gold-standard FSC with --halves) -------------------------------------
    ch_predict_in = ch_masked.map { m, star, tomos, deconv, masks -> [m, star, tomos, deconv] }
    ch_final_star = Channel.empty()     // [ meta, tomograms.star ] naming the corrected tomograms
    ch_corrected = Channel.empty()      // [ meta, [corrected tomograms] ]
    ch_fsc_files = Channel.value([])
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

        // one FSC per tomogram: <name>_half1_corrected.mrc with <name>_half2_corrected.mrc, its mask and wedge
        ch_fsc_in = ISONET_PREDICT_HALF1.out.corrected
            .join(ISONET_PREDICT_HALF2.out.corrected)
            .join(ISONET_MAKE_MASK.out.mask)
            .flatMap { m, star1, half1, star2, half2, star_mask, masks -> fscInputs(m, star1, half1, half2, masks, asBool(opts.fsc_use_mask)) }
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
    ch_report = Channel.empty()
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
    Channel.topic('versions')
        .map { proc, tool, version -> "${tool}: ${version.toString().trim()}".toString() }
        .mix(Channel.value("nextflow: ${workflow.nextflow.version}".toString()))   // plain strings: a GString holding a VersionNumber cannot be serialised
        .unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${opts.outdir}/pipeline_info", sort: true, newLine: true)

    emit:
    star      = ch_final_star    // channel: [ val(meta), path(tomograms.star) ]
    corrected = ch_corrected     // channel: [ val(meta), [ path(corrected tomogram) ] ]
    refine    = REFINE.out.state // channel: [ val(meta), path(refine_state) ]
    report    = ch_report        // channel: [ val(meta), path(report.html) ]
}
