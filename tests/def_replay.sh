#!/usr/bin/env bash
# Replay containers/isonet.def with Podman where Apptainer cannot be installed (it is not
# packaged for Debian 12): the definition's %files are copied, its %post runs with /bin/sh as
# root (TARGET substituted, as `apptainer build --build-arg TARGET=...` does) on the same kind of
# base, and its %test runs with its %environment sourced, as the calling user would under
# Apptainer (here uid 1000). Run by hand, like tests/container_run.sh:
#
#   tests/def_replay.sh            # TARGET=cpu
#   tests/def_replay.sh cuda       # TARGET=cuda (needs no GPU; downloads ~4 GB of wheels)
#
# The base is PYTHON_IMAGE (default localhost/debian-python:bookworm, made as in
# docs/pipeline.md or by tests/container_run.sh) in place of the definition's `From:`, which
# cannot be pulled here. The replayed image is tagged localhost/isonet-nf-def:<target> and
# removed afterwards unless KEEP=1. It prints the build time and exits non-zero on failure.
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
target="${1:-cpu}"
case "$target" in
    cpu|cuda) ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "Error: the target must be cpu or cuda, not '$target'." >&2; exit 2 ;;
esac
fail() { echo "def_replay: FAILED: $*" >&2; exit 1; }
command -v podman >/dev/null || fail "podman is not installed; see docs/pipeline.md."
base="${PYTHON_IMAGE:-localhost/debian-python:bookworm}"
podman image exists "$base" || fail "$base is missing; make it as in docs/pipeline.md (or run tests/container_run.sh once)."

def="$root/containers/isonet.def"
# the text of one %section, TARGET substituted
section() {
    awk -v name="%$1" '/^%[a-z]+/ { on = ($1 == name); next } on' "$def" | sed "s/{{ TARGET }}/$target/g"
}

work="$(mktemp -d /tmp/isonet-def-replay.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree"
while read -r source dest; do
    [[ -n "$source" ]] || continue
    [[ -e "$root/$source" ]] || fail "%files names $source, which is not in the repository."
    mkdir -p "$work/tree$(dirname "$dest")"
    cp -r "$root/$source" "$work/tree$dest"
done < <(section files)
find "$work/tree" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
section post > "$work/post.sh"
{ section environment; section test; } > "$work/test.sh"
grep -q 'isonet check' "$work/test.sh" || fail "the %test section of $def does not run isonet check."
cat > "$work/Containerfile" <<EOF
FROM $base
COPY tree/ /
COPY post.sh test.sh /.replay/
RUN /bin/sh /.replay/post.sh
EOF

mounts=()
ca="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
if [[ -f "$ca" ]]; then
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$work/pip.conf"
    mounts=(-v "$ca:/etc/ssl/certs/ca-certificates.crt:ro" -v "$work/pip.conf:/etc/pip.conf:ro")
fi
image="localhost/isonet-nf-def:$target"
start=$(date +%s)
podman build ${mounts[@]+"${mounts[@]}"} -t "$image" -f "$work/Containerfile" "$work" >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log" >&2; fail "%post of $def (TARGET=$target) failed."; }
build_s=$(( $(date +%s) - start ))
size="$(podman image inspect --format '{{.Size}}' "$image")"
echo "def_replay: %post (TARGET=$target) built in ${build_s} s ($(( size / 1000000 )) MB)"
out="$(podman run --rm -u 1000:1000 "$image" /bin/sh -c '. /.replay/test.sh' 2>&1)" \
    || { echo "$out" >&2; fail "%test of $def (TARGET=$target) failed."; }
echo "$out" | grep -q 'isonet-nf is ready' || { echo "$out" >&2; fail "%test did not report 'isonet-nf is ready'."; }
echo "$out" | grep -E '^(isonet-nf|tensorflow|GPUs seen)'
[[ "${KEEP:-0}" == 1 ]] || podman rmi "$image" >/dev/null
echo "def_replay: OK"
