// Parses Nextflow files with nf-lang's strict parser (the one `nextflow lint` uses, and the default
// parser from Nextflow 26.04) and prints `ok FILE` or one `FILE:LINE:COLUMN: message` per error.
// Exits 1 when there is any error. Run by .ci/strict_syntax.sh.
import nextflow.config.control.ConfigParser
import nextflow.script.control.ScriptParser
import org.codehaus.groovy.control.messages.SyntaxErrorMessage

def scripts = new ScriptParser()
def configs = new ConfigParser()
args.each { name ->
    def file = new File(name)
    name.endsWith('.nf') ? scripts.parse(file) : configs.parse(file)
}
scripts.analyze()
configs.analyze()
def errors = 0
[scripts, configs].each { parser ->
    parser.compiler().getSources().values().sort { source -> source.getName() }.each { source ->
        def found = (source.getErrorCollector().getErrors() ?: []).findAll { message -> message instanceof SyntaxErrorMessage }
        found.each { message ->
            def cause = message.getCause()
            println "${source.getName()}:${cause.getStartLine()}:${cause.getStartColumn()}: ${cause.getOriginalMessage()}"
            errors++
        }
        if (!found) {
            println "ok ${source.getName()}"
        }
    }
}
System.exit(errors ? 1 : 0)
