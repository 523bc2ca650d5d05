#!/usr/bin/env bash
# Parse every Nextflow file of the pipeline (*.nf, *.config) with the strict syntax parser of
# nf-lang 25.04.0 (Maven Central; tests/nextflow/nf-lang/pom.xml), as Nextflow 26.04 does by
# default. Prints `ok FILE` or `FILE:LINE:COLUMN: message` per error; exits 1 on any error.
#
#   bash .ci/strict_syntax.sh --install     # fetch nf-lang with Maven once (needs mvn)
#   bash .ci/strict_syntax.sh               # every .nf/.config file of the checkout
#   bash .ci/strict_syntax.sh FILE...       # just these
#
# The jars are kept in $ISONET_NFLANG_CACHE (default ~/.cache/isonet-nf/nf-lang-25.04.0); exit 2
# when they are missing. Java 17 must be on PATH.
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cache="${ISONET_NFLANG_CACHE:-${HOME:-/nonexistent}/.cache/isonet-nf/nf-lang-25.04.0}"

if [[ "${1:-}" == "--install" ]]; then
    if [[ ! -f "$cache/lib/nf-lang-25.04.0.jar" ]]; then
        rm -rf "$cache/lib.part"
        mvn -q -B -f "$root/tests/nextflow/nf-lang/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$cache/lib.part" >/dev/null
        rm -rf "$cache/lib" && mv "$cache/lib.part" "$cache/lib"
    fi
    echo "strict_syntax: nf-lang in $cache/lib"
    exit 0
fi
if [[ ! -f "$cache/lib/nf-lang-25.04.0.jar" ]]; then
    echo "Error: nf-lang 25.04.0 is not in $cache/lib; fetch it with: bash .ci/strict_syntax.sh --install" >&2
    exit 2
fi
cd "$root"
if [[ $# -eq 0 ]]; then
    mapfile -t files < <(find . -path ./.venv -prune -o -path ./work -prune -o -path ./.git -prune -o \
                              \( -name '*.nf' -o -name '*.config' \) -type f -print | sed 's|^\./||' | sort)
    set -- "${files[@]}"
fi
# a short-lived JVM: the quick JIT tier alone and the serial collector halve its CPU time
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$cache/lib/*" groovy.ui.GroovyMain "$root/.ci/strict_syntax.groovy" "$@"
