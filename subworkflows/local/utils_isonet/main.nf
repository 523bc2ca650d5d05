// Parameter checks and --help from nextflow_schema.json, before any task starts.
//
// nf-schema is the ecosystem's validator, but it is a plugin fetched at run time; this file needs
// nothing beyond Nextflow itself, so a pipeline launched offline (CI, an air-gapped facility) is
// checked the same way. It reads the same schema nf-schema would (draft 2020-12: $defs groups,
// type, enum, minimum/maximum, exclusiveMinimum, pattern) and reports every problem, one line
// each, naming the parameter, the value and the fix. Booleans accept true/false, yes/no and 1/0
// (the same rule as `flag()` in nextflow.config, which the modules' ext.args use).

import groovy.json.JsonSlurper

// true/false from a param given on the command line, in a params file or in a config.
def asBool(value) {
    return value instanceof Boolean ? value : value.toString().trim().toLowerCase() in ['true', 'yes', '1']
}

// Every parameter the schema describes, name -> its property map (with 'group' added).
def schemaParams(schema_file) {
    def schema = new JsonSlurper().parse(file(schema_file).toFile())
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
    if (prop.enum && !(text in prop.enum.collect { choice -> choice.toString() })) {
        return "--${name} ${text}: not one of ${prop.enum.join(', ')}; pick one of those."
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
    }
    return null
}

// The closest known name to a misspelt one (edit distance), for the error's fix.
def closestName(name, names) {
    def distance = { String a, String b ->
        def previous = (0..b.size()).toList()
        a.eachWithIndex { ca, i ->
            def current = [i + 1]
            b.eachWithIndex { cb, j ->
                current << [previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)].min()
            }
            previous = current
        }
        previous[-1]
    }
    return names.min { candidate -> distance(name, candidate) }
}

// Every problem with the given parameters, one line each (empty when all is well).
def paramProblems(given, schema_file) {
    def known = schemaParams(schema_file)
    def problems = []
    given.each { name, value ->
        def key = name.toString()
        // Nextflow also stores --kebab-case and camelCase spellings of each parameter
        def snake = key.replaceAll(/([a-z0-9])([A-Z])/, '$1_$2').toLowerCase().replace('-', '_')
        if (!known.containsKey(snake)) {
            problems << "--${key}: not a parameter of this pipeline; did you mean --${closestName(snake, known.keySet())}? (see --help)"
        }
        else if (snake == key) {
            def problem = checkValue(key, value, known[key])
            if (problem) {
                problems << problem
            }
        }
    }
    return problems
}

// Stops the run with every problem listed, before any task starts.
def validateParams(given, schema_file) {
    def problems = paramProblems(given, schema_file)
    if (problems) {
        error "Invalid parameters:\n  " + problems.join('\n  ')
    }
}

// --help: every parameter by group, with its default and description.
def helpText(schema_file, command) {
    def lines = ["Usage: ${command}", '']
    schemaParams(schema_file).groupBy { name, prop -> prop.group }.each { group, props ->
        lines << "${group}:"
        props.each { name, prop ->
            def shown = prop.default != null ? " [default: ${prop.default}]" : ''
            def choices = prop.enum ? " (${prop.enum.join('|')})" : ''
            lines << String.format('  --%-24s %s%s%s', name, prop.description ?: '', choices, shown)
        }
        lines << ''
    }
    return lines.join('\n')
}

// Settings a profile needs that no default can give, checked before any task starts.
def checkProfileNeeds(given, profile) {
    def profiles = profile.toString().tokenize(',')
    if ('awsbatch' in profiles && !given.aws_cli_path) {
        error "-profile awsbatch: --aws_cli_path is missing; the images have no AWS CLI, so give the path of the aws command on the compute environment's AMI (docs/pipeline.md, 'AWS Batch')."
    }
}
