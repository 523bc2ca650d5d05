#!/usr/bin/env bash
# Tools the test suite uses beyond Python packages, installed only where missing:
#   - Chromium (Debian package) to render the HTML report headless;
#   - a Java runtime and the Groovy 4 jar inside the npm package npm-groovy-lint 18.0.0, to parse
#     every Nextflow file (.nf, .config) without a Nextflow runtime (.ci/groovy_parse.sh).
# Needs root for apt-get (as on CI); without it, the tests that need a tool skip with a reason.
set -euo pipefail

apt_packages=()
command -v chromium >/dev/null || apt_packages+=(chromium)
command -v java >/dev/null || apt_packages+=(default-jre-headless)
command -v npm >/dev/null || apt_packages+=(npm)
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
echo "install_tools: chromium $(command -v chromium || echo missing), java $(command -v java || echo missing), npm-groovy-lint ${prefix}"
