#!/usr/bin/env bash
# The test profile under a real Nextflow runtime, every task inside the locally built CPU image
# with Podman, and no registry pull. Run by hand before a hand-over (not in CI: the image build
# takes minutes and needs Podman):
#
#   tests/container_run.sh                # reuse localhost/isonet-nf:<version>-cpu if it was built
#                                         # from the current sources, else build it
#   tests/container_run.sh --rebuild      # build the image again first, in any case
#   tests/container_run.sh --keep         # keep the run folder (work/, results/) afterwards
#
# What it does:
#   1. makes the base image localhost/debian-python:bookworm with debootstrap when it is missing
#      (Debian 12 with python3 and python3-venv; needs root and the debootstrap package);
#   2. builds the CPU image with containers/build.sh --engine podman --target cpu on that base
#      when it is missing or was built from other sources (its label isonet-nf.source-sha256
#      holds a hash of the build context) or with --rebuild, the host's CA bundle mounted for
#      the build only; a change to isonet_steps rebuilds only the package layer (seconds);
#   3. runs `nextflow run main.nf -profile test,podman` offline in a new folder, with
#      --container_cpu localhost/isonet-nf:<version>-cpu (a fully qualified local name: Podman
#      uses the local image and never asks a registry);
#   4. checks the run: every task ran `podman run` with that image, no image was pulled, and
#      the corrected tomograms, the final STAR and the report were published.
# It prints the build and run times and exits non-zero on the first failure.
#
# Environment: NEXTFLOW (default: nextflow), DEBIAN_MIRROR (default: the mirror apt uses here,
# else http://deb.debian.org/debian), CA_BUNDLE (default: /etc/ssl/certs/ca-certificates.crt).
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
rebuild=false
keep=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rebuild) rebuild=true; shift ;;
        --keep) keep=true; shift ;;
        -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "Error: unknown option '$1' (see $0 --help)." >&2; exit 2 ;;
    esac
done

fail() { echo "container_run: FAILED: $*" >&2; exit 1; }

nextflow="${NEXTFLOW:-nextflow}"
command -v podman >/dev/null || fail "podman is not installed; install it (apt-get install podman buildah runc) and see docs/pipeline.md."
command -v "$nextflow" >/dev/null || fail "'$nextflow' is not on PATH; run tests/install_tools.sh (or set NEXTFLOW)."
podman info >/dev/null 2>&1 || fail "'podman info' fails; set runtime = \"runc\" and default_ulimits in /etc/containers/containers.conf (docs/pipeline.md)."

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/isonet_steps/__init__.py")"
[[ -n "$version" ]] || fail "no __version__ in $root/isonet_steps/__init__.py; cannot name the image."
image="localhost/isonet-nf:${version}-cpu"
base="localhost/debian-python:bookworm"

# --- 1 and 2: the base and the CPU image ----------------------------------------------------------
# a hash of everything the cpu target is built from (containers/Dockerfile.dockerignore's list)
source_hash="$(cd "$root" && find pyproject.toml README.md isonet_steps containers/Dockerfile \
        containers/Dockerfile.dockerignore containers/requirements-build.txt containers/requirements-cpu.txt \
        -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
image_hash=""
if podman image exists "$image"; then
    image_hash="$(podman image inspect --format '{{index .Labels "isonet-nf.source-sha256"}}' "$image")"
fi
build_s=0
build_note="reused $image (built from these sources)"
if $rebuild || [[ "$image_hash" != "$source_hash" ]]; then
    start=$(date +%s)
    if ! podman image exists "$base"; then
        command -v debootstrap >/dev/null || fail "$base is missing and debootstrap is not installed; apt-get install debootstrap, or import a Debian 12 image with python3-venv as $base."
        [[ $(id -u) -eq 0 ]] || fail "$base is missing and debootstrap needs root; run as root or import the base as in docs/pipeline.md."
        mirror="${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}"
        mirror="${mirror:-http://deb.debian.org/debian}"
        rootfs="$(mktemp -d /tmp/isonet-rootfs.XXXXXX)"
        echo "container_run: making $base with debootstrap from $mirror"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
            || fail "debootstrap failed; its log is $rootfs.log."
        tar -C "$rootfs" -c . | podman import - "$base" >/dev/null || fail "podman import of $rootfs failed."
        rm -rf "$rootfs" "$rootfs.log"
    fi
    mounts=()
    ca="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
    pipconf=""
    if [[ -f "$ca" ]]; then
        # HTTPS inside the build trusts what the host trusts: the bundle and a pip.conf naming
        # it are mounted for the build only, never copied into the image
        pipconf="$(mktemp /tmp/isonet-pip.XXXXXX.conf)"
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$pipconf"
        mounts=(-v "$ca:/etc/ssl/certs/ca-certificates.crt:ro" -v "$pipconf:/etc/pip.conf:ro")
    fi
    echo "container_run: building $image"
    build_log="$(mktemp /tmp/isonet-build.XXXXXX.log)"
    if ! "$root/containers/build.sh" --engine podman --target cpu \
            --build-arg "PYTHON_IMAGE=$base" -- --label "isonet-nf.source-sha256=$source_hash" \
            ${mounts[@]+"${mounts[@]}"} >"$build_log" 2>&1; then
        tail -n 30 "$build_log" >&2
        fail "the image build failed; its log is $build_log."
    fi
    [[ -n "$pipconf" ]] && rm -f "$pipconf"
    grep -q 'isonet-nf is ready' "$build_log" || fail "the build did not end with 'isonet check' saying ready; see $build_log."
    rm -f "$build_log"
    build_s=$(( $(date +%s) - start ))
    build_note="built $image"
fi
size="$(podman image inspect --format '{{.Size}}' "$image")"
echo "container_run: $build_note in ${build_s} s ($(( size / 1000000 )) MB)"

# --- 3: the test profile under Nextflow -----------------------------------------------------------
run_dir="$(mktemp -d /tmp/isonet-container-run.XXXXXX)"
images_before="$(podman images --noheading --format '{{.ID}} {{.Repository}}:{{.Tag}}' | sort)"
echo "container_run: nextflow run main.nf -profile test,podman in $run_dir"
start=$(date +%s)
set +e
(cd "$run_dir" && NXF_OFFLINE=true "$nextflow" run "$root/main.nf" -profile test,podman \
    --outdir "$run_dir/results" --container_cpu "$image" -ansi-log false) >"$run_dir/nextflow.out" 2>&1
rc=$?
set -e
run_s=$(( $(date +%s) - start ))
echo "container_run: nextflow exited $rc after ${run_s} s"
if [[ $rc -ne 0 ]]; then
    tail -n 40 "$run_dir/nextflow.out" >&2
    fail "the pipeline run failed (exit $rc); its output is $run_dir/nextflow.out, the log $run_dir/.nextflow.log."
fi

# --- 4: it really ran in the image, pulled nothing and published its results ---------------------
mapfile -t wrappers < <(find "$run_dir/work" -name .command.run -type f)
[[ ${#wrappers[@]} -gt 0 ]] || fail "no task folders in $run_dir/work."
outside=0
for wrapper in "${wrappers[@]}"; do
    grep -q "podman run .* $image " "$wrapper" || outside=$(( outside + 1 ))
done
[[ $outside -eq 0 ]] || fail "$outside of ${#wrappers[@]} tasks did not run 'podman run ... $image'; see $run_dir/work."
images_after="$(podman images --noheading --format '{{.ID}} {{.Repository}}:{{.Tag}}' | sort)"
[[ "$images_before" == "$images_after" ]] || fail "the run changed the local images (a pull?): $(diff <(echo "$images_before") <(echo "$images_after") | tail -n +2 | tr '\n' ' ')"
results="$run_dir/results"
for wanted in tomograms.star report.html; do
    [[ -s "$results/$wanted" ]] || fail "$results/$wanted is missing or empty."
done
# the trace is named by the launch time (params.trace_report_suffix)
traces=("$results"/pipeline_info/execution_trace_*.txt)
[[ -s "${traces[0]}" ]] || fail "$results/pipeline_info/execution_trace_<time>.txt is missing or empty."
corrected=$(find "$results/corrected_tomos" -name '*_corrected.mrc' -size +0 2>/dev/null | wc -l)
[[ $corrected -ge 1 ]] || fail "no corrected tomogram in $results/corrected_tomos."

echo "container_run: ${#wrappers[@]} tasks ran in $image; $corrected corrected tomograms, report.html published"
echo "container_run: timings: build ${build_s} s ($build_note), run ${run_s} s"
if $keep; then
    echo "container_run: kept $run_dir"
else
    rm -rf "$run_dir"
fi
echo "container_run: OK"
