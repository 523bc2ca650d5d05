#!/usr/bin/env bash
# Build both isonet-nf images with Docker or Podman and tag them as nextflow.config names them
# (params.container_cpu / params.container_gpu): isonet-nf:<version>-cpu and -cuda.
#
#   containers/build.sh                      # docker if present, else podman; both targets
#   containers/build.sh --engine podman --target cpu
#   containers/build.sh --registry registry.example.org/cryoem --push
#
# Options:
#   --engine docker|podman   container engine (default: docker, else podman)
#   --target cpu|cuda|all    which image(s) to build (default: all)
#   --registry PREFIX        also tag as PREFIX/isonet-nf:<version>-<target>
#   --push                   push the registry tags (needs --registry) and print their digests
#   --build-arg NAME=VALUE   passed to the build (e.g. PYTHON_IMAGE=localhost/debian-python:bookworm)
#   --dry-run                print the commands only
# Extra arguments after `--` go to the engine's build command as they are.
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/isonet_steps/__init__.py")"
if [[ -z "$version" ]]; then
    echo "Error: no __version__ in $root/isonet_steps/__init__.py; cannot name the images." >&2
    exit 2
fi

engine=""
targets=(cpu cuda)
registry=""
push=false
dry_run=false
build_args=()
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --engine) engine="${2:?--engine needs docker or podman}"; shift 2 ;;
        --target)
            case "${2:-}" in
                cpu|cuda) targets=("$2") ;;
                all) targets=(cpu cuda) ;;
                *) echo "Error: --target must be cpu, cuda or all, not '${2:-}'." >&2; exit 2 ;;
            esac
            shift 2 ;;
        --registry) registry="${2:?--registry needs a prefix such as registry.example.org/cryoem}"; shift 2 ;;
        --push) push=true; shift ;;
        --build-arg) build_args+=(--build-arg "${2:?--build-arg needs NAME=VALUE}"); shift 2 ;;
        --dry-run) dry_run=true; shift ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "Error: unknown option '$1' (see $0 --help)." >&2; exit 2 ;;
    esac
done

if [[ -z "$engine" ]]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        engine=docker
    elif command -v podman >/dev/null; then
        engine=podman
    else
        echo "Error: neither a working docker nor podman was found; install one or pass --engine." >&2
        exit 2
    fi
fi
if [[ "$engine" != docker && "$engine" != podman ]]; then
    echo "Error: --engine must be docker or podman, not '$engine'." >&2
    exit 2
fi
if $push && [[ -z "$registry" ]]; then
    echo "Error: --push needs --registry (the images are pushed under that prefix)." >&2
    exit 2
fi

run() {
    echo "+ $*"
    if ! $dry_run; then
        "$@"
    fi
}

ignore=()
if [[ "$engine" == podman ]]; then
    ignore=(--ignorefile "$root/containers/Dockerfile.dockerignore")
fi

for target in "${targets[@]}"; do
    tag="isonet-nf:${version}-${target}"
    tags=(-t "$tag")
    if [[ -n "$registry" ]]; then
        tags+=(-t "${registry%/}/$tag")
    fi
    run "$engine" build -f "$root/containers/Dockerfile" --target "$target" \
        ${ignore[@]+"${ignore[@]}"} ${build_args[@]+"${build_args[@]}"} "${tags[@]}" \
        ${extra[@]+"${extra[@]}"} "$root"
    if $push; then
        run "$engine" push "${registry%/}/$tag"
    fi
done

names=()
for target in "${targets[@]}"; do
    names+=("isonet-nf:${version}-${target}")
done
if $dry_run; then
    echo "Would build: ${names[*]}"
else
    echo "Built: ${names[*]}"
fi
if $push; then
    echo "Pin the pushed images by digest, e.g.:"
    for target in "${targets[@]}"; do
        echo "  $engine image inspect --format '{{index .RepoDigests 0}}' ${registry%/}/isonet-nf:${version}-${target}"
    done
fi
