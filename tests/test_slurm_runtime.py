"""The slurm profile on a real one-node SLURM cluster (tests/slurm/install.sh, run by tests/install_tools.sh).

Select with ``-m nextflow``. Every task is an sbatch job of the local test cluster (the trace's
native_id is its SLURM job id); tests/slurm/local.config only makes Nextflow poll SLURM every
second, and each run's resourceLimits is the test node's size, as a facility's site config sets
its own. These tests submit jobs only to that test cluster (ClusterName isonet-test): elsewhere,
or where it is not up, they skip with the reason (on CI, where install_tools.sh starts it, they fail).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import test_nextflow_runtime as runtime

from isonet_steps.io.mrc import write_volume

ROOT = runtime.ROOT
SLURM = ROOT / "tests" / "slurm"
TEST_CLUSTER = "isonet-test"
NODE_READY = ("idle", "mixed", "allocated", "completing")


@functools.cache
def _cluster_problem() -> str | None:
    """Why the local test cluster cannot take jobs now, or None when it can."""
    hint = "run `bash tests/install_tools.sh` as root (tests/slurm/install.sh starts a one-node cluster)"
    try:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return f"no SLURM here (scontrol missing): {hint}"
    if config.returncode != 0:
        return f"slurmctld does not answer ({config.stderr.strip()[:200]}): {hint}"
    cluster = re.search(r"^ClusterName\s*=\s*(\S+)", config.stdout, re.M)
    if cluster is None or cluster.group(1) != TEST_CLUSTER:
        return (f"this SLURM is cluster {cluster.group(1) if cluster else '?'}, not the local test cluster "
                f"{TEST_CLUSTER} of tests/slurm/install.sh; these tests submit jobs only there")
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30).stdout.split()
    if not state or state[0] not in NODE_READY:
        return f"the test cluster's node is {state[0] if state else 'missing'}, not idle: {hint}"
    return None


@pytest.fixture
def slurm_cluster():
    problem = _cluster_problem()
    if problem and os.environ.get("CI"):
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)


def on_cluster(test):
    """Marks a test that runs Nextflow on the local test cluster (skipped without either)."""
    for mark in (*runtime.pytestmark, pytest.mark.usefixtures("slurm_cluster")):
        test = mark(test)
    return test


def _install(*runner: str) -> subprocess.CompletedProcess:
    return subprocess.run([*runner, "bash", str(SLURM / "install.sh")], capture_output=True, text=True, timeout=600)


def _daemon_pids() -> list[str]:
    return [Path(f"/run/{name}.pid").read_text().strip() for name in ("slurmctld", "slurmd")]


@pytest.mark.usefixtures("slurm_cluster")
@pytest.mark.skipif(os.geteuid() != 0, reason="tests/slurm/install.sh sets up the cluster as root only")
def test_install_again_changes_nothing():
    """With the cluster up, install.sh keeps slurm.conf and the running daemons, and reports the node ready."""
    before = _daemon_pids()
    run = _install()
    assert run.returncode == 0, run.stderr
    assert "slurm.conf unchanged" in run.stderr, run.stderr
    assert re.search(rf"is ({'|'.join(NODE_READY)}); ", run.stderr), run.stderr  # other tests' jobs may run
    assert _daemon_pids() == before


@pytest.mark.skipif(os.geteuid() != 0 or subprocess.run(["id", "nobody"], capture_output=True).returncode != 0,
                    reason="needs root to run install.sh as the unprivileged user nobody")
def test_install_without_root_skips_with_a_message():
    run = _install("runuser", "-u", "nobody", "--")
    assert run.returncode == 0, run.stderr
    assert "not root; skipping the local SLURM cluster" in run.stderr


def _node_config(tmp_path: Path) -> Path:
    """A site config capping every request at the test node (its CPUs and memory, from sinfo)."""
    cpus, memory_mb = subprocess.run(["sinfo", "-h", "-o", "%c %m"], capture_output=True, text=True,
                                     timeout=30, check=True).stdout.split()[:2]
    path = tmp_path / "node.config"
    path.write_text(f"process.resourceLimits = [cpus: {cpus}, memory: '{memory_mb.rstrip('+')} MB', time: 1.h]\n")
    return path


def _on_slurm(tmp_path: Path) -> list[str]:
    return ["-profile", "test,slurm", "-c", str(SLURM / "local.config"), "-c", str(_node_config(tmp_path))]


def _slurm_job(job_id: str) -> dict[str, str]:
    """The job as `scontrol show job` records it (the test cluster keeps finished jobs an hour: MinJobAge)."""
    run = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, f"SLURM does not know job {job_id}: {run.stderr}"
    return dict(field.split("=", 1) for field in run.stdout.split() if "=" in field)


def _every_task_a_slurm_job(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each trace row's native_id is a distinct SLURM job id that SLURM knows; their records."""
    ids = [row["native_id"] for row in rows]
    assert ids and all(job_id.isdigit() for job_id in ids), ids
    assert len(set(ids)) == len(ids), ids
    return [_slurm_job(job_id) for job_id in ids]


@on_cluster
@pytest.mark.slow
def test_real_test_profile_on_slurm_then_resumed(tmp_path):
    """-profile test,slurm for real: every task a completed SLURM job; -resume: every task cached."""
    first = tmp_path / "first"
    runtime.ok(runtime.nextflow(tmp_path, *_on_slurm(tmp_path), "--outdir", str(first), timeout=1200))
    rows = runtime.trace(first)
    assert {row["status"] for row in rows} == {"COMPLETED"}
    for step in ("ISONET_MAKE_PHANTOM", "ISONET_EXTRACT", "ISONET_REFINE_INIT", "ISONET_REFINE_ITERATION",
                 "ISONET_PREDICT_HALF1", "ISONET_FSC", "ISONET_REPORT"):
        assert runtime.tasks_of(rows, step), step
    for job, row in zip(_every_task_a_slurm_job(rows), rows, strict=True):
        assert job["JobState"] == "COMPLETED", (row["name"], job)
        assert job["WorkDir"] == row["workdir"], (row["name"], job)
    assert (first / "report.html").exists()

    second = tmp_path / "second"
    runtime.ok(runtime.nextflow(tmp_path, *_on_slurm(tmp_path), "-resume", "--outdir", str(second), timeout=600))
    resumed = runtime.trace(second)
    assert {row["status"] for row in resumed} == {"CACHED"}
    assert sorted(row["hash"] for row in resumed) == sorted(row["hash"] for row in rows)
    assert (second / "report.html").exists()


@on_cluster
def test_stub_four_tomograms_on_slurm(tmp_path):
    """A folder of four tomograms, -stub: each tomogram's tasks, every one a SLURM job."""
    folder = tmp_path / "tomos"
    rng = np.random.default_rng(0)
    names = ("TS_01", "TS_02", "TS_03", "TS_04")
    for name in names:
        write_volume(folder / f"{name}.mrc", rng.normal(size=(16, 32, 32)).astype(np.float32), 10.0)
    out = tmp_path / "out"
    runtime.ok(runtime.nextflow(tmp_path, *_on_slurm(tmp_path), "-stub", "--phantom", "false",
                                "--input", str(folder), "--outdir", str(out)))
    rows = runtime.trace(out)
    for step in ("ISONET_MAKE_MASK", "ISONET_EXTRACT", "ISONET_PREDICT_HALF1", "ISONET_PREDICT_HALF2", "ISONET_FSC"):
        assert sorted(row["tag"] for row in runtime.tasks_of(rows, step)) == list(names), step
    assert {row["status"] for row in rows} == {"COMPLETED"}
    assert {job["JobState"] for job in _every_task_a_slurm_job(rows)} == {"COMPLETED"}


@on_cluster
def test_task_over_its_slurm_memory_is_retried_with_more(tmp_path):
    """A job over its --mem is killed by SLURM (137) and retried by conf/base.config's rule with twice the memory."""
    out = tmp_path / "out"
    run = subprocess.run(
        ["nextflow", "run", str(SLURM / "memory_retry.nf"), "-c", str(ROOT / "nextflow.config"),
         "-profile", "slurm", "-c", str(SLURM / "local.config"), "-c", str(_node_config(tmp_path)),
         "--outdir", str(out), "--python", sys.executable, "--need_mb", "450"],
        cwd=tmp_path, env=runtime._env(tmp_path), capture_output=True, text=True, timeout=600)
    runtime.ok(run)
    assert "450 MB held" in run.stdout
    rows = sorted(runtime.trace(out), key=lambda row: int(row["attempt"]))
    assert [(row["attempt"], row["status"], row["exit"], row["memory"]) for row in rows] == [
        ("1", "FAILED", "137", "300 MB"), ("2", "COMPLETED", "0", "600 MB")]
    killed, completed = _every_task_a_slurm_job(rows)
    assert killed["JobState"] == "OUT_OF_MEMORY" and killed["MinMemoryNode"] == "300M", killed
    assert completed["JobState"] == "COMPLETED" and completed["MinMemoryNode"] == "600M", completed


# --------------------------------------------------------------------------------------------
# CUDA_VISIBLE_DEVICES: the value SLURM gives a GPU job reaches the isonet step as it is
# --------------------------------------------------------------------------------------------

_SETS_CUDA_VISIBLE_DEVICES = re.compile(r"(export|unset|env)\s+[^\n]*CUDA_VISIBLE_DEVICES|CUDA_VISIBLE_DEVICES\s*[=:]")


def test_no_module_or_config_sets_cuda_visible_devices():
    """No module, workflow or config assigns, exports or unsets CUDA_VISIBLE_DEVICES; GPU tasks pass no --gpus."""
    files = [ROOT / "nextflow.config", ROOT / "main.nf", *sorted((ROOT / "conf").glob("*")),
             *sorted(ROOT.glob("modules/**/*.nf")), *sorted(ROOT.glob("workflows/*.nf")),
             *sorted(ROOT.glob("subworkflows/**/*.nf"))]
    assert len(files) > 10
    for path in files:
        assert not _SETS_CUDA_VISIBLE_DEVICES.search(path.read_text()), path
    gpu_modules = [path for path in ROOT.glob("modules/local/*/main.nf") if "label 'process_gpu'" in path.read_text()]
    assert len(gpu_modules) >= 3
    for path in gpu_modules:
        # a GPU task (task.accelerator set) leaves the device choice to the environment
        assert "def gpus = task.accelerator ? '' : '--gpus cpu'" in path.read_text(), path


@pytest.mark.parametrize("text", ["export CUDA_VISIBLE_DEVICES=0", "unset CUDA_VISIBLE_DEVICES",
                                  "env { CUDA_VISIBLE_DEVICES = '0' }", "env CUDA_VISIBLE_DEVICES=1 isonet-refine",
                                  "containerOptions = '--env CUDA_VISIBLE_DEVICES=0'"])
def test_the_check_finds_a_module_setting_cuda_visible_devices(text):
    assert _SETS_CUDA_VISIBLE_DEVICES.search(f"script:\n    {text}\n")
    assert not _SETS_CUDA_VISIBLE_DEVICES.search("// SLURM sets CUDA_VISIBLE_DEVICES for a GPU job\n")


def _recording_python(tmp_path: Path) -> tuple[Path, Path]:
    """An ISONET_PYTHON that writes each isonet step's command and device environment to a file.

    It then runs the step, except the refine task's own isonet-refine (not its --version): the test
    needs only how that step starts, so it stops there (exit 3) rather than train.
    """
    record = tmp_path / "devices.tsv"
    script = tmp_path / "recording-python"
    script.write_text(
        "#!/usr/bin/env bash\n"
        'printf "%s\\t%s\\t%s\\t%s\\t%s\\n" "${*:3}" "${SLURM_JOB_ID-}" "${SLURM_JOB_GPUS-none}" '
        '"${CUDA_VISIBLE_DEVICES-unset}" "${ISONET_REQUIRE_GPU-unset}" >> @RECORD@\n'
        'if [[ "$3" == refine && "$4" != --version ]]; then exit 3; fi\n'
        'exec @PYTHON@ "$@"\n'.replace("@RECORD@", str(record)).replace("@PYTHON@", sys.executable))
    script.chmod(0o755)
    return script, record


# before the profiles' GPU fix, the slurm profile's own withLabel: process_gpu block replaces
# conf/base.config's (the GPU tasks lose their accelerator, so their modules pass --gpus cpu)
_PROFILE_REPLACES_GPU_LABEL = "withLabel: process_gpu" in (ROOT / "nextflow.config").read_text()


@on_cluster
@pytest.mark.xfail(_PROFILE_REPLACES_GPU_LABEL, strict=True,
                   reason="nextflow.config's slurm profile has its own withLabel: process_gpu block, which "
                          "replaces conf/base.config's: the GPU tasks get --gpus cpu")
def test_gpu_task_keeps_the_cuda_visible_devices_slurm_gives(tmp_path):
    """--use_gpu on the test cluster (one placeholder GPU; one network, so one refine job): the refine
    job asks --gres=gpu:1, SLURM sets CUDA_VISIBLE_DEVICES, and isonet-refine starts with that value,
    as a GPU task (no --gpus, ISONET_REQUIRE_GPU=1). SLURM also unsets the variable a CPU job would
    otherwise inherit from the submitter (7 here): the CPU steps start without it.
    """
    python, record = _recording_python(tmp_path)
    env = runtime._env(tmp_path)
    env.update(ISONET_PYTHON=str(python), CUDA_VISIBLE_DEVICES="7")
    out = tmp_path / "out"
    run = subprocess.run(["nextflow", "run", str(runtime.MAIN), *_on_slurm(tmp_path), "--use_gpu", "true",
                          "--halves", "false", "--outdir", str(out)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode != 0, "the recording python stops the refine task"
    init = runtime.tasks_of(runtime.trace(out), "ISONET_REFINE_INIT")
    assert len(init) == 1 and init[0]["exit"] == "3", init
    assert "gpu:1" in _slurm_job(init[0]["native_id"]).get("TresPerNode", "")

    steps = [line.split("\t") for line in record.read_text().splitlines()]
    cpu_names = ("make-phantom", "prepare-star", "make-mask", "extract")
    cpu_steps = [s for s in steps if s[0].split(" ", 1)[0] in cpu_names]
    assert len(cpu_steps) >= 8 and all(s[2:] == ["none", "unset", "unset"] for s in cpu_steps), steps
    refine = [s for s in steps if s[0].startswith("refine subtomo.star") and s[1] == init[0]["native_id"]]
    assert len(refine) == 1, steps
    command, _, slurm_gpus, visible, require_gpu = refine[0]
    assert slurm_gpus != "none" and visible == slurm_gpus, refine  # SLURM's GPU, unchanged
    assert require_gpu == "1" and "--gpus" not in command.split(), refine
