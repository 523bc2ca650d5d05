// Parameter checks and --help from nextflow_schema.json, before any task starts.
//
// nf-schema is the ecosystem's validator, but it is a plugin fetched at run time; this file needs
// nothing beyond Nextflow itself, so a pipeline launched offline (CI, an air-gapped facility) is
// checked the same way. It reads the same schema nf-schema would (draft 2020-12: $defs groups,
// type, enum, minimum/maximum, exclusiveMinimum/exclusiveMaximum, multipleOf, pattern, and
// format file-path/directory-path/path with exists for local paths) and reports every problem,
// one line each, naming the parameter, the value and the fix. Booleans accept true/false, yes/no
// and 1/0 (the same rule the configs' closures write inline: config files can hold no functions).
// No `import`: the strict syntax of Nextflow 25.04+ refuses it, so classes are named in full.

// true/false from a param given on the command line, in a params file or in a config.
def asBool(value) {
    return value instanceof Boolean ? value : value.toString().trim().toLowerCase() in ['true', 'yes', '1']
}

// Every parameter the schema describes, name -> its property map (with 'group' added).
def schemaParams(schema_file) {
    def schema = new groovy.json.JsonSlurper().parse(file(schema_file).toFile())
    def found = [:]
    schema.get('$defs', [:]).each { group, body ->
        body.get('properties', [:]).each { name, prop ->
            found[name] = prop + [group: body.title ?: group]
        }
    }
    return found
}

// One problem line for a value of a parameter, or null when the value fits its property.
def checkValue(name, value, prop) {
    if (value == null) {
        return null
    }
    def text = value.toString().trim()
    def type = prop.type
    def number = null
    if (type == 'boolean') {
        if (!(value instanceof Boolean) && !(text.toLowerCase() in ['true', 'false', 'yes', 'no', '1', '0'])) {
            return "--${name} ${text}: not a boolean; give true or false."
        }
        return null
    }
    if (type == 'integer') {
        if (!(text ==~ /[+-]?\d+/)) {
            return "--${name} ${text}: not a whole number; give an integer such as ${prop.default ?: 1}."
        }
        number = text.toBigInteger()
    }
    else if (type == 'number') {
        if (!text.isBigDecimal()) {
            return "--${name} ${text}: not a number; give a value such as ${prop.default ?: 1}."
        }
        number = text.toBigDecimal()
    }
    if (prop['enum'] && !(text in prop['enum'].collect { choice -> choice.toString() })) {
        return "--${name} ${text}: not one of ${prop['enum'].join(', ')}; pick one of those."
    }
    if (prop.pattern && !(text ==~ prop.pattern)) {
        return "--${name} ${text}: does not have the expected form (${prop.description ?: prop.pattern}); see --help."
    }
    if (number != null) {
        if (prop.minimum != null && number < prop.minimum) {
            return "--${name} ${text}: below the minimum ${prop.minimum}; give at least ${prop.minimum}."
        }
        if (prop.maximum != null && number > prop.maximum) {
            return "--${name} ${text}: above the maximum ${prop.maximum}; give at most ${prop.maximum}."
        }
        if (prop.exclusiveMinimum != null && number <= prop.exclusiveMinimum) {
            return "--${name} ${text}: must be greater than ${prop.exclusiveMinimum}."
        }
        if (prop.exclusiveMaximum != null && number >= prop.exclusiveMaximum) {
            return "--${name} ${text}: must be less than ${prop.exclusiveMaximum}."
        }
        if (prop.multipleOf != null && (number as BigDecimal).remainder(prop.multipleOf as BigDecimal) != 0) {
            return "--${name} ${text}: not a multiple of ${prop.multipleOf}; give e.g. ${nearestMultiple(number, prop.multipleOf)}."
        }
    }
    return pathProblem(name, text, prop)
}

// The multiple of step nearest to number, at least step itself (the fix offered for a multipleOf).
def nearestMultiple(number, step) {
    def count = ((number as BigDecimal) / (step as BigDecimal)).setScale(0, java.math.RoundingMode.HALF_UP)
    return count.max(1) * step
}

// One problem line for a path parameter (schema format and exists), or null. Only local paths are
// looked at: an object-store path (s3://, gs://, ...) is checked by the task that reads it.
def pathProblem(name, text, prop) {
    if (!(prop.format in ['path', 'file-path', 'directory-path']) || text.contains('://')) {
        return null
    }
    def target = new File(text)
    def fix = prop.errorMessage ? " ${prop.errorMessage}" : ''
    if (!target.exists()) {
        return prop.exists ? "--${name} ${text}: no such file or folder.${fix ?: ' Give an existing path.'}" : null
    }
    if (prop.format == 'file-path' && target.isDirectory()) {
        return "--${name} ${text}: a folder, not a file.${fix ?: ' Give a file.'}"
    }
    if (prop.format == 'directory-path' && !target.isDirectory()) {
        return "--${name} ${text}: a file, not a folder.${fix ?: ' Give a folder.'}"
    }
    return null
}

// The edit distance between two names (insertions, deletions and substitutions).
def editDistance(String a, String b) {
    def previous = (0..b.size()).toList()
    a.eachWithIndex { ca, i ->
        def current = [i + 1]
        b.eachWithIndex { cb, j ->
            current << [previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)].min()
        }
        previous = current
    }
    return previous[-1]
}

// The closest known name to a misspelt one, for the error's fix.
def closestName(name, names) {
    return names.min { candidate -> editDistance(name, candidate) }
}

// Parameters that nf-core's institutional configs (nf-core/configs, -profile <site>) set for every
// pipeline: this one does not use them, and they are not mistakes of the user.
def isInstitutionalParam(name) {
    return name ==~ /(config_profile_|custom_config_)\w+|max_(cpus|memory|time)|hostnames/
}

// Every problem with the given parameters: [unknown: lines, invalid: lines] (empty when all is well).
def paramProblems(given, schema_file) {
    def known = schemaParams(schema_file)
    def unknown = []
    def invalid = []
    given.each { name, value ->
        def key = name.toString()
        // Nextflow also stores --kebab-case and camelCase spellings of each parameter
        def snake = key.replaceAll(/([a-z0-9])([A-Z])/, '$1_$2').toLowerCase().replace('-', '_')
        if (!known.containsKey(snake)) {
            if (!isInstitutionalParam(snake)) {
                unknown << "--${key}: not a parameter of this pipeline; did you mean --${closestName(snake, known.keySet())}? (see --help)"
            }
        }
        else if (snake == key) {
            def problem = checkValue(key, value, known[key])
            if (problem) {
                invalid << problem
            }
        }
    }
    return [unknown: unknown, invalid: invalid]
}

// Stops the run with every problem listed, before any task starts. With --validate_params false an
// unknown parameter (a site config's own) is a warning; a wrong value always stops the run.
def validateParams(given, schema_file, strictNames) {
    def problems = paramProblems(given, schema_file)
    def strict = asBool(strictNames)
    def stopping = problems.invalid + (strict ? problems.unknown : [])
    if (!strict && problems.unknown) {
        log.warn "Unknown parameters, ignored (--validate_params false):\n  " + problems.unknown.join('\n  ')
    }
    if (stopping) {
        def hint = strict && problems.unknown ? '\n  (parameters set by a site config for other pipelines: add --validate_params false)' : ''
        error "Invalid parameters:\n  " + stopping.join('\n  ') + hint
    }
}

// --help: every parameter by group, with its default and description.
def helpText(schema_file, command) {
    def lines = ["Usage: ${command}", '']
    schemaParams(schema_file).groupBy { name, prop -> prop.group }.each { group, props ->
        lines << "${group}:"
        props.each { name, prop ->
            def shown = prop.default != null ? " [default: ${prop.default}]" : ''
            def choices = prop['enum'] ? " (${prop['enum'].join('|')})" : ''
            lines << String.format('  --%-24s %s%s%s', name, prop.description ?: '', choices, shown)
        }
        lines << ''
    }
    return lines.join('\n')
}

// Settings a profile needs that no default can give, and inputs a profile cannot run, checked
// before any task starts. A tomograms.star input (RELION 5 or IsoNet) is read by prepare-star where
// its files are, by host paths (relative to the RELION project or the launch folder), which cloud
// tasks on their own VMs do not have.
def checkProfileNeeds(given, profile, starInput) {
    def profiles = profile.toString().tokenize(',')
    if ('awsbatch' in profiles && !given.aws_cli_path) {
        error "-profile awsbatch: --aws_cli_path is missing; the images have no AWS CLI, so give the path of the aws command on the compute environment's AMI (docs/pipeline.md, 'AWS Batch')."
    }
    def cloud = profiles.findAll { name -> name in ['awsbatch', 'google'] }
    if (starInput && cloud) {
        error "-profile ${cloud[0]}: --input ${given.input} is a tomograms.star, whose files (a RELION 5 project, or an IsoNet STAR's tomograms) are read by host paths that ${cloud[0]} tasks do not see; run it where they are on a filesystem every task shares (local, slurm, or k8s with them on its volume; docs/relion5.md), or give a folder of tomograms."
    }
}

// Every check that must pass before any task starts: the parameters against the schema, then what
// the profiles need. A workflow (not only functions) so nf-core's tools can read this subworkflow.
workflow PIPELINE_INITIALISATION {
    take:
    given           // the run's params
    schema_file     // nextflow_schema.json
    strict_names    // params.validate_params: an unknown parameter stops the run (else a warning)
    profile         // workflow.profile
    star_input      // whether --input is a tomograms.star (RELION 5 or IsoNet)

    main:
    validateParams(given, schema_file, strict_names)
    checkProfileNeeds(given, profile, star_input)
}
