"""The profiles as Nextflow really resolves them, the parameter checks, and the strict syntax.

- A probe pipeline (two local `exec:` processes, labels process_gpu and process_low) runs under the
  pipeline's config and each profile, and prints every directive of its task as Nextflow resolved
  it: the GPU label's CPUs, memory, image, accelerator, scheduler options and queue, the limits.
  Local exec tasks resolve the same config as the real executors do, without a scheduler or cloud.
- Stub runs of main.nf: test_gpu on this host, an institutional config, -resume, bad values.
- nf-lang's strict parser (Nextflow 26.04's default) on every .nf/.config file (.ci/strict_syntax.sh).
- Static checks that do not need Nextflow.

Select the runtime tests with ``-m nextflow``; the static ones always run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from test_nextflow_runtime import _env, nextflow, ok, tasks_of, trace
from test_pipeline_static import _scan

ROOT = Path(__file__).resolve().parents[1]
HOST_CPUS = os.cpu_count() or 1
HOST_MEMORY_GB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024 ** 3
CPU_IMAGE, GPU_IMAGE = "isonet-nf:0.1.0-cpu", "isonet-nf:0.1.0-cuda"
BOOLEAN_RULE = ".toString().trim().toLowerCase() in ['true', 'yes', '1']"
need_nextflow = pytest.mark.skipif(shutil.which("nextflow") is None,
                                   reason="no nextflow on PATH: run `bash tests/install_tools.sh`")

PROBE = """
def resolved(kind, task) {
    return groovy.json.JsonOutput.toJson([
        kind: kind, cpus: task.cpus, memory: task.memory?.toString(), time: task.time?.toString(),
        container: task.container, queue: task.queue, clusterOptions: task.clusterOptions,
        machineType: task.machineType, containerOptions: task.containerOptions,
        accelerator: task.accelerator ? [request: task.accelerator.request, type: task.accelerator.type] : null,
        limit_time: task.getResourceLimit('time')?.toString()])
}
process GPU_PROBE {
    label 'process_gpu'
    executor 'local'
    input: val x
    exec:
    println 'PROBE ' + resolved('gpu', task)
}
process LOW_PROBE {
    label 'process_low'
    executor 'local'
    input: val x
    exec:
    println 'PROBE ' + resolved('low', task)
}
workflow {
    def wanted = workflow.manifest.nextflowVersion.replace('!', '')
    def versions = ['24.04.4', '24.10.0', '24.10.8', '25.10.7', '26.04.0', '26.10.1']
    def admitted = versions.collectEntries { v -> [v, new nextflow.util.VersionNumber(v).matches(wanted)] }
    println 'VERSIONS ' + groovy.json.JsonOutput.toJson(admitted)
    GPU_PROBE(1)
    LOW_PROBE(1)
}
"""


def _probe(tmp_path: Path, profile: str, params: dict | None = None) -> dict:
    """Run the probe under ``-profile profile``: {'gpu': directives, 'low': directives, 'versions': ...}."""
    where = tmp_path / profile.replace(",", "_")
    where.mkdir()
    (where / "probe.nf").write_text(PROBE)
    # the local executor refuses a task larger than this host: let it accept what a node would get
    (where / "probe.config").write_text("executor { cpus = 1024; memory = '64 TB' }\n")
    args = ["nextflow", "-q", "run", "probe.nf", "-c", str(ROOT / "nextflow.config"), "-c", "probe.config",
            "-profile", profile]
    if params:
        (where / "params.json").write_text(json.dumps(params))
        args += ["-params-file", "params.json"]
    run = subprocess.run(args, cwd=where, env=_env(where), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"-profile {profile}: {run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    found = {}
    for line in run.stdout.splitlines():
        if line.startswith("PROBE "):
            values = json.loads(line[len("PROBE "):])
            found[values.pop("kind")] = values
        elif line.startswith("VERSIONS "):
            found["versions"] = json.loads(line[len("VERSIONS "):])
    assert set(found) == {"gpu", "low", "versions"}, run.stdout
    return found


def _gb(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"GB": 1, "TB": 1024, "MB": 1 / 1024}[unit]


PROBES = {
    "gpu": None,
    "slurm,gpu": {"queue": "cpu", "gpu_queue": "gpu", "cluster_options": "--account=cryoem"},
    "google,gpu": None,
    "awsbatch,gpu": {"queue": "isonet"},
    "k8s,gpu": None,
    "test_gpu": None,
    "slurm": {"queue": "cpu", "gpu_queue": "gpu"},
}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict[str, dict]:
    tmp_path = tmp_path_factory.mktemp("probes")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_probe, tmp_path, name, params) for name, params in PROBES.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.nextflow
@need_nextflow
def test_gpu_label_resolves_under_every_profile(resolved):
    """Every GPU profile gives refine/predict 8 CPUs, 48 GB, the CUDA image and one GPU (finding 1).

    Before, -profile slurm,gpu and google,gpu replaced the whole GPU label: 1 CPU, 6 GB, the CPU image.
    """
    for profile in ("gpu", "slurm,gpu", "google,gpu", "awsbatch,gpu", "k8s,gpu"):
        gpu = resolved[profile]["gpu"]
        cluster = profile != "gpu"
        assert gpu["cpus"] == (8 if cluster else min(8, HOST_CPUS)), (profile, gpu)
        assert _gb(gpu["memory"]) == (48 if cluster else min(48, HOST_MEMORY_GB)), (profile, gpu)
        assert gpu["time"] == "1d", (profile, gpu)
        assert gpu["container"] == GPU_IMAGE, (profile, gpu)
        assert gpu["accelerator"]["request"] == 1, (profile, gpu)
        assert resolved[profile]["low"]["container"] == CPU_IMAGE, profile
    # SLURM asks for the GPU in sbatch terms, after the site's options; GPU tasks go to --gpu_queue
    slurm = resolved["slurm,gpu"]
    assert slurm["gpu"]["clusterOptions"] == "--account=cryoem --gres=gpu:1"
    assert slurm["gpu"]["queue"] == "gpu" and slurm["low"]["queue"] == "cpu"
    assert slurm["low"]["clusterOptions"] == "--account=cryoem"
    # Google Batch: the GPU's model and a machine-type pattern it picks the cheapest fitting machine from
    google = resolved["google,gpu"]["gpu"]
    assert google["accelerator"] == {"request": 1, "type": "nvidia-l4"}
    assert google["machineType"] == "g2-standard-*"
    # Kubernetes reads the accelerator's type as its resource name: none given, nvidia.com/gpu
    assert resolved["k8s,gpu"]["gpu"]["accelerator"]["type"] is None
    assert resolved["awsbatch,gpu"]["gpu"]["queue"] == "isonet"


@pytest.mark.nextflow
@need_nextflow
def test_without_gpu_the_gpu_label_asks_no_gpu(resolved):
    gpu = resolved["slurm"]["gpu"]
    assert gpu["container"] == CPU_IMAGE and gpu["accelerator"] is None
    assert gpu["clusterOptions"] is None and gpu["machineType"] is None
    assert gpu["queue"] == "cpu", "without --use_gpu, refine and predict run on the CPU queue"


@pytest.mark.nextflow
@need_nextflow
def test_test_gpu_keeps_the_test_limits_and_clusters_cap_at_48_hours(resolved):
    """test_gpu: the test profile's 2 CPUs and 6 GB (finding 3), not 8 CPUs and 60 GB; node limits 48 h (15)."""
    gpu = resolved["test_gpu"]["gpu"]
    assert gpu["cpus"] == min(2, HOST_CPUS) and _gb(gpu["memory"]) == 6 and gpu["container"] == GPU_IMAGE
    for profile in ("slurm,gpu", "google,gpu", "awsbatch,gpu", "k8s,gpu"):
        assert resolved[profile]["gpu"]["limit_time"] == "2d", profile


@pytest.mark.nextflow
@need_nextflow
def test_manifest_admits_the_supported_nextflow_versions(resolved):
    """24.10 to 25.10; 26.04 parses with the strict syntax by default, which main.nf cannot pass (finding 2)."""
    assert resolved["gpu"]["versions"] == {"24.04.4": False, "24.10.0": True, "24.10.8": True, "25.10.7": True,
                                           "26.04.0": False, "26.10.1": False}


# --------------------------------------------------------------------------------------------
# stub runs of main.nf
# --------------------------------------------------------------------------------------------

INSTITUTIONAL = """
params {
    config_profile_description = 'A cluster of an institute'
    config_profile_contact     = 'someone@example.org'
    max_memory                 = '64.GB'
    site_only_setting          = 3
}
"""


@pytest.mark.nextflow
@need_nextflow
def test_stub_test_gpu_on_this_host_with_an_institutional_config_and_resume(tmp_path):
    """test_gpu on this host (before: 'req: 8; avail: 2'), an nf-core institutional config (before:
    unknown parameters), no launch warnings about undefined params, and -resume keeping the first
    run's trace beside its own (before: overwritten).
    """
    site = tmp_path / "institution.config"
    site.write_text(INSTITUTIONAL)
    out = tmp_path / "out"
    args = ["-profile", "test_gpu", "-stub", "-c", str(site), "--halves", "false", "--iterations", "1"]
    refused = nextflow(tmp_path, *args, "--outdir", str(tmp_path / "refused"))
    assert refused.returncode != 0
    text = refused.stdout + refused.stderr
    assert "--site_only_setting: not a parameter" in text and "--validate_params false" in text
    assert "config_profile" not in text and "max_memory" not in text

    args += ["--outdir", str(out), "--validate_params", "false"]
    first = ok(nextflow(tmp_path, *args, "--trace_report_suffix", "first"))
    text = first.stdout + first.stderr
    assert "--site_only_setting: not a parameter" in text  # a warning now
    assert "undefined parameter" not in text
    rows = trace(out)
    gpu_rows = tasks_of(rows, "ISONET_REFINE_INIT") + tasks_of(rows, "ISONET_PREDICT")
    assert len(gpu_rows) == 2 and all(row["container"] == GPU_IMAGE for row in gpu_rows)
    assert all(int(row["cpus"]) <= HOST_CPUS for row in rows)

    ok(nextflow(tmp_path, *args, "--trace_report_suffix", "second", "-resume"))
    names = sorted(p.name for p in (out / "pipeline_info").glob("execution_*"))
    assert names == ["execution_report_first.html", "execution_report_second.html",
                     "execution_timeline_first.html", "execution_timeline_second.html",
                     "execution_trace_first.txt", "execution_trace_second.txt"]


@pytest.mark.nextflow
@need_nextflow
def test_schema_ranges_multiples_paths_and_choices_are_checked(tmp_path):
    """--cube_size 60 and --dropout 1.5 passed before and failed in a task; so did a missing model (7),
    and --publish_dir_mode move broke the run (6).
    """
    (tmp_path / "model.keras").mkdir()
    run = nextflow(tmp_path, "-profile", "test", "-stub", "--outdir", str(tmp_path / "out"), "--cube_size", "60",
                   "--dropout", "1.5", "--input", "missing_folder", "--publish_dir_mode", "move",
                   "--overlap_rate", "1", "--pretrained_model", str(tmp_path / "model.keras"))
    assert run.returncode != 0
    text = run.stdout + run.stderr
    assert "--cube_size 60: not a multiple of 8; give e.g. 64." in text
    assert "--dropout 1.5: must be less than 1." in text
    assert "--overlap_rate 1: must be less than 1." in text
    assert "--input missing_folder: no such file or folder. --input must be an existing folder of tomograms" in text
    assert "--publish_dir_mode move: not one of copy, symlink, link, rellink, copyNoFollow" in text
    assert f"--pretrained_model {tmp_path / 'model.keras'}: a folder, not a file. --pretrained_model must be" in text
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


RELION5_STAR = """
data_global

loop_
_rlnTomoName
_rlnTomoTiltSeriesStarFile
_rlnTomoReconstructedTomogram
TS_01 tilt_series/TS_01.star tomograms/TS_01.mrc
"""


@pytest.mark.nextflow
@need_nextflow
def test_star_input_is_refused_under_cloud_profiles(tmp_path):
    """A tomograms.star's files are read by host paths: under google or awsbatch it stops before any task (9)."""
    star = tmp_path / "tomograms.star"
    star.write_text(RELION5_STAR)
    run = nextflow(tmp_path, "-profile", "google", "--input", str(star), "--outdir", str(tmp_path / "out"))
    assert run.returncode != 0
    assert (f"-profile google: --input {star} is a tomograms.star, whose files (a RELION 5 project, or an IsoNet "
            "STAR's tomograms) are read by host paths" in run.stdout + run.stderr)


# --------------------------------------------------------------------------------------------
# strict syntax (nf-lang 25.04.0, .ci/strict_syntax.sh)
# --------------------------------------------------------------------------------------------

# errors the strict parser reports that stay, each with its reason (docs/pipeline.md, "Nextflow versions")
KNOWN_STRICT_ERRORS = {
    # the topic-channel switch: 24.10 needs nextflow.preview.topic, 25.04+ refuses it
    ("main.nf", "Statements cannot be mixed with script declarations"),
    # nf-lang 25.04 does not know that process directive closures may read the task's inputs (26.04 does)
    ("conf/modules.config", "`meta` is not defined"),
    ("conf/modules.config", "`done` is not defined"),
}


def _strict(*files: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / ".ci" / "strict_syntax.sh"), *files], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _need_nf_lang():
    cache = Path(os.environ.get("ISONET_NFLANG_CACHE", Path.home() / ".cache" / "isonet-nf" / "nf-lang-25.04.0"))
    if not (cache / "lib" / "nf-lang-25.04.0.jar").is_file() or not shutil.which("java"):
        message = "nf-lang 25.04.0 or java missing: bash .ci/strict_syntax.sh --install (Maven, a JDK 17)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_every_nextflow_file_parses_with_the_strict_syntax():
    _need_nf_lang()
    run = _strict()
    errors = re.findall(r"^(\S+?):\d+:\d+: (.*)$", run.stdout, re.M)
    unknown = [(path, message) for path, message in errors
               if not any(path == known_path and message.startswith(known)
                          for known_path, known in KNOWN_STRICT_ERRORS)]
    assert not unknown, "strict syntax errors (Nextflow 26.04 refuses these):\n" + "\n".join(map(str, unknown))
    parsed = set(re.findall(r"^ok\s+(\S+)", run.stdout, re.M)) | {path for path, _ in errors}
    assert {"nextflow.config", "conf/base.config", "subworkflows/local/utils_isonet/main.nf"} <= parsed, run.stdout


def test_strict_syntax_check_catches_a_config_function(tmp_path):
    """Control: the nextflow.config of before (a def function and variable) fails the same check."""
    _need_nf_lang()
    config = tmp_path / "old.config"
    config.write_text("def flag(value) {\n    return value\n}\ndef limits = [cpus: 16]\nprocess.cpus = 2\n")
    run = _strict(str(config))
    assert run.returncode == 1 and f"{config}:1:" in run.stdout, run.stdout


# --------------------------------------------------------------------------------------------
# static checks
# --------------------------------------------------------------------------------------------

def _profiles_block() -> str:
    text = (ROOT / "nextflow.config").read_text()
    start = text.index("\nprofiles {")
    return text[start:text.index("\n}\n", start)]


def test_no_profile_sets_a_process_selector():
    """A profile's withLabel/withName block replaces the same selector of conf/base.config whole (finding 1)."""
    profiles = _profiles_block()
    assert not re.search(r"\bwith(Label|Name)\s*:", profiles), "set params in the profile; conf/base.config reads them"
    assert "includeConfig 'conf/modules.config'" not in profiles and "includeConfig 'conf/base.config'" not in profiles
    for name in ("test.config", "cluster_node.config"):
        assert not re.search(r"\bwith(Label|Name)\s*:", (ROOT / "conf" / name).read_text()), name


def test_booleans_in_configs_use_the_validators_rule():
    """Config files cannot hold functions: every boolean param they read uses asBool's rule, written alike."""
    utils = (ROOT / "subworkflows" / "local" / "utils_isonet" / "main.nf").read_text()
    assert f"value{BOOLEAN_RULE}" in utils
    for path in (ROOT / "conf").glob("*.config"):
        text = _scan(path.read_text())[0]
        for name in ("use_gpu", "noise2noise", "batch_norm", "halves"):
            for m in re.finditer(r"params\." + name + r"\b(.{0,60})", text):
                assert m.group(1).startswith(BOOLEAN_RULE), f"{path.name}: params.{name}{m.group(1)}"


def test_retries_cover_reclaimed_spot_vms():
    """Google Batch reruns a reclaimed spot VM itself, and exit 50001 is retried by Nextflow (finding 5)."""
    assert "+ 50001)" in (ROOT / "conf" / "base.config").read_text()
    assert re.search(r"google\.batch\.maxSpotAttempts\s*=\s*[1-9]", _profiles_block())


def test_modules_declare_their_image_and_fail_on_a_broken_version_command():
    """Each module names its default image (image tools list them; finding 16) and reports its version
    with pipefail: Nextflow runs an eval command with bash -c, where a failing command before a pipe
    went unseen and recorded an empty version (12).
    """
    config = (ROOT / "nextflow.config").read_text()
    defaults = {label: re.search(rf"{label}\s*=\s*'([^']+)'", config).group(1)
                for label in ("container_cpu", "container_gpu")}
    for path in sorted((ROOT / "modules" / "local").glob("*/main.nf")):
        text = path.read_text()
        gpu = "label 'process_gpu'" in text
        assert re.search(rf"^\s*container\s+'{re.escape(defaults['container_gpu' if gpu else 'container_cpu'])}'\s*$",
                         text, re.M), f"{path}: container '{defaults['container_gpu' if gpu else 'container_cpu']}'"
        for command in re.findall(r"eval\('([^']*)'\)", text):
            assert "|" not in command or command.startswith("set -o pipefail; "), \
                f"{path}: eval('{command}') hides a failing command behind a pipe (Nextflow runs it without pipefail)"


def test_meta_yml_documentation_is_a_url_under_the_manifest_home_page():
    """nf-core's module schema wants a URL (finding 16); it names a file of this repository."""
    home = re.search(r"homePage\s*=\s*'([^']+)'", (ROOT / "nextflow.config").read_text()).group(1)
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", home)
    for path in sorted((ROOT / "modules" / "local").glob("*/meta.yml")):
        (tool, info), = yaml.safe_load(path.read_text())["tools"][0].items()
        doc = info["documentation"]
        assert doc.startswith(f"{home}/blob/main/"), f"{path}: {doc}"
        assert (ROOT / doc[len(f"{home}/blob/main/"):]).is_file(), f"{path}: {doc}"


def test_nf_core_lint_config_and_manifest():
    """nf-core tools read .nf-core.yml and a manifest name owner/name (they crashed without them)."""
    config = yaml.safe_load((ROOT / ".nf-core.yml").read_text())
    assert config["repository_type"] == "pipeline"
    name = re.search(r"^\s*name\s*=\s*'([^']+)'", (ROOT / "nextflow.config").read_text(), re.M).group(1)
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", name)
    # nf-core's subworkflow lint reads the first workflow block of each subworkflow (it crashed without one)
    for path in sorted((ROOT / "subworkflows" / "local").glob("*/main.nf")):
        assert re.search(r"^workflow\s+[A-Z][A-Z0-9_]*\s*\{", path.read_text(), re.M), path
