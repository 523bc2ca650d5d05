#!/usr/bin/env bash
# Tools the test suite uses beyond Python packages, installed only where missing:
#   - Chromium (Debian package) to render the HTML report headless;
#   - a Java runtime and the Groovy 4 jar inside the npm package npm-groovy-lint 18.0.0, to parse
#     every Nextflow file (.nf, .config) without a Nextflow runtime (.ci/groovy_parse.sh);
#   - the Nextflow runtime itself, release 24.10.8, from Maven Central (tests/nextflow/pom.xml,
#     fetched with Maven into a cache folder once) and a `nextflow` launcher on PATH
#     (/usr/local/bin as root, else ~/.local/bin) that runs it offline; an existing `nextflow`
#     that this script did not install is left alone;
#   - a one-node SLURM cluster (Debian's slurm-wlm and munge, daemons started, node idle) for the
#     slurm profile's runtime tests: tests/slurm/install.sh.
# Needs root for apt-get (as on CI); without it, the tests that need a tool skip with a reason.
set -euo pipefail

apt_packages=()
command -v chromium >/dev/null || apt_packages+=(chromium)
command -v java >/dev/null || apt_packages+=(default-jre-headless)
command -v npm >/dev/null || apt_packages+=(npm)
command -v mvn >/dev/null || apt_packages+=(maven)
if [[ ${#apt_packages[@]} -gt 0 ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
    else
        echo "install_tools: not root; skipping apt packages: ${apt_packages[*]}" >&2
    fi
fi

prefix="${NPM_GROOVY_LINT_PREFIX:-$HOME/.cache/npm-groovy-lint}"
if [[ ! -d "$prefix/node_modules/npm-groovy-lint" ]] && command -v npm >/dev/null; then
    npm install --silent --no-audit --no-fund --prefix "$prefix" npm-groovy-lint@18.0.0 >/dev/null
fi
nxf_version=24.10.8
nxf_cache="${ISONET_NXF_CACHE:-$HOME/.cache/isonet-nf/nextflow-$nxf_version}"
here="$(cd "$(dirname "$0")" && pwd)"
if [[ ! -f "$nxf_cache/lib/nextflow-$nxf_version.jar" ]] && command -v mvn >/dev/null; then
    rm -rf "$nxf_cache/lib.part"
    mvn -q -B -f "$here/nextflow/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$nxf_cache/lib.part" >/dev/null
    rm -rf "$nxf_cache/lib" && mv "$nxf_cache/lib.part" "$nxf_cache/lib"
fi
if [[ $(id -u) -eq 0 ]]; then bindir=/usr/local/bin; else bindir="$HOME/.local/bin"; fi
marker='runtime installed from Maven Central by tests/install_tools.sh'
existing="$(command -v nextflow || true)"
if [[ -f "$nxf_cache/lib/nextflow-$nxf_version.jar" ]] && { [[ -z "$existing" ]] || grep -qs "$marker" "$existing"; }; then
    mkdir -p "$bindir"
    sed "s|@LIB@|$nxf_cache/lib|" "$here/nextflow/nextflow" > "$bindir/nextflow.part"
    chmod +x "$bindir/nextflow.part" && mv "$bindir/nextflow.part" "$bindir/nextflow"
fi
bash "$here/slurm/install.sh"
echo "install_tools: nextflow $(NXF_OFFLINE=true nextflow -version 2>/dev/null | grep -o 'version [0-9.]*' || echo missing)"
echo "install_tools: chromium $(command -v chromium || echo missing), java $(command -v java || echo missing), npm-groovy-lint ${prefix}"
# nf-lang 25.04.0, Nextflow's strict syntax parser, for tests/test_profiles.py (.ci/strict_syntax.sh)
if command -v mvn >/dev/null; then
    bash "$here/../.ci/strict_syntax.sh" --install || echo "install_tools: nf-lang not installed" >&2
fi
