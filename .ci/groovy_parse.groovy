// Parses each file named on the command line as Groovy 4 up to the CONVERSION phase (the
// syntax tree, no class resolution), which is how far Nextflow scripts and configs can be
// checked without Nextflow: DSL forms such as `process foo { input: ... }` are plain Groovy
// syntax there. Prints one line per file and every syntax error; exits 1 if any file failed.
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.MultipleCompilationErrorsException
import org.codehaus.groovy.control.Phases

int failed = 0
args.each { String name ->
    def file = new File(name)
    if (!file.isFile()) {
        println "MISSING ${name}"
        failed++
        return
    }
    def unit = new CompilationUnit(new CompilerConfiguration())
    unit.addSource(file)
    try {
        unit.compile(Phases.CONVERSION)
        println "ok      ${name}"
    }
    catch (MultipleCompilationErrorsException error) {
        println "FAILED  ${name}"
        println error.message.readLines().collect { line -> "        ${line}" }.join('\n')
        failed++
    }
}
println "${args.length - failed} parsed, ${failed} failed"
System.exit(failed ? 1 : 0)
