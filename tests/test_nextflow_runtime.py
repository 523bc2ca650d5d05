"""The pipeline under a real Nextflow runtime (24.10.8 from Maven Central, tests/install_tools.sh).

Select with ``-m nextflow``. Every run is offline (NXF_OFFLINE=true), on the local executor,
without containers; the steps run from this checkout through bin/ with this interpreter
(ISONET_PYTHON). Stub runs (-stub) check the wiring, the recursion and the parameter handling in
seconds per task; the real runs train the `test` profile's tiny networks.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import pytest
import starfile

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "main.nf"

pytestmark = [
    pytest.mark.nextflow,
    pytest.mark.skipif(shutil.which("nextflow") is None,
                       reason="no nextflow on PATH: run `bash tests/install_tools.sh` "
                              "(Nextflow 24.10.8 from Maven Central)"),
]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NXF_OFFLINE="true", NXF_ANSI_LOG="false", ISONET_PYTHON=sys.executable,
               ISONET_NO_PROGRESS="1")
    env.pop("NXF_WORK", None)
    # these runs last seconds: the JVM's quick JIT tier alone (no optimising C2 compiles) and the serial
    # collector halve Nextflow's CPU time, the suite's largest part after TensorFlow's imports (a
    # NXF_OPTS of one's own is kept as it is: two collectors given would stop the JVM)
    env.setdefault("NXF_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    # Nextflow appends bin/ to PATH: drop the environment's own isonet-* entry points (an
    # installed copy that may be older than this checkout) so the tasks run the checkout's code
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep) if part != venv_bin)
    return env


def nextflow(tmp_path: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`nextflow run main.nf ARGS` launched from ``tmp_path`` (its work/ and .nextflow/ go there)."""
    return subprocess.run(["nextflow", "run", str(MAIN), *args], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=timeout)


def ok(run: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert run.returncode == 0, f"nextflow exited {run.returncode}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    return run


def trace(outdir: Path) -> list[dict[str, str]]:
    """The rows of the newest run's trace (each run's is named by its launch time)."""
    newest = max((outdir / "pipeline_info").glob("execution_trace_*.txt"), key=lambda path: path.stat().st_mtime)
    with open(newest, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def tasks_of(rows: list[dict[str, str]], process: str) -> list[dict[str, str]]:
    return [row for row in rows if row["process"].split(":")[-1] == process]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# stub runs: wiring, recursion depth, parameters
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["false", "yes", "1"])
def test_stub_pipeline_and_halves_spellings(tmp_path, spelling):
    """--halves given as false / yes / 1: the workflow and the modules' ext.args agree.

    The refine stub makes half1/ and half2/ only when its ext.args say --halves, and the workflow
    then looks for half1/model_final.keras: a disagreement fails the run. (The test profile's
    own default, true, is the 45-iteration run below.)
    """
    out = tmp_path / "out"
    ok(nextflow(tmp_path, "-profile", "test", "-stub", "--outdir", str(out), "--halves", spelling))
    corrected = sorted(p.name for p in (out / "corrected_tomos").iterdir())
    if spelling == "false":
        assert corrected == ["tomo_corrected.mrc"]
        assert not (out / "fsc").exists()
        assert (out / "refine" / "model_final.keras").exists()
    else:
        assert corrected == ["tomo_half1_corrected.mrc", "tomo_half2_corrected.mrc"]
        assert sorted(p.name for p in (out / "fsc").iterdir()) == ["tomo_fsc.json", "tomo_fsc.png"]
        assert (out / "refine" / "half2" / "model_final.keras").exists()
    assert (out / "report.html").exists()
    versions = (out / "pipeline_info" / "software_versions.yml").read_text()
    assert "nextflow: 24.10" in versions and "isonet-refine: " in versions


def test_stub_refine_recursion_past_40_iterations(tmp_path):
    """45 iterations of each half: each iteration stages extract's own subtomograms (no chain of links)."""
    out = tmp_path / "out"
    ok(nextflow(tmp_path, "-profile", "test", "-stub", "--outdir", str(out), "--iterations", "45"))
    rows = tasks_of(trace(out), "ISONET_REFINE_ITERATION")
    assert len(rows) == 90 and sum("REFINE_HALF2" in row["process"] for row in rows) == 45
    extract_dir = Path(tasks_of(trace(out), "ISONET_EXTRACT")[0]["workdir"])
    merge_dir = Path(tasks_of(trace(out), "ISONET_MERGE_SUBTOMOS")[0]["workdir"])
    last = Path(max(rows, key=lambda row: int(row["tag"].split()[-1]))["workdir"])
    for staged, origin in (("subtomos/tomo_000000.mrc", extract_dir / "subtomos"), ("subtomo.star", merge_dir)):
        link = last / staged
        assert link.is_symlink() and Path(os.readlink(link)).parent == origin
    # refine/ is the last iteration's state, models/ has every iteration's model
    assert sorted(p.name for p in (out / "refine" / "half1").glob("model_iter*.keras")) == ["model_iter45.keras"]
    assert len(list((out / "models" / "half1").glob("model_iter*.keras"))) == 45


def test_stub_fast_schedule_params_file(tmp_path):
    """-params-file conf/fast.yaml over the test profile: its iterations, each refine task given its schedule."""
    out = tmp_path / "out"
    ok(nextflow(tmp_path, "-profile", "test", "-stub", "--outdir", str(out), "--halves", "false",
                "-params-file", str(ROOT / "conf" / "fast.yaml")))
    rows = tasks_of(trace(out), "ISONET_REFINE_ITERATION")
    assert len(rows) == 6
    for row in rows:
        script = (Path(row["workdir"]) / ".command.sh").read_text()
        for flag in ("--epochs 1", "--steps-per-epoch 80", "--batch-size 2",
                     "--noise-level 0.05,0.1", "--noise-start-iter 3,5"):
            assert flag in script, (flag, script)


def test_stub_deconv_follows_the_selected_rows(tmp_path):
    """--tomo_idx selecting only a defocus-0 row: no deconv task (it had nothing to write)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.mrc", "b.mrc"):
        (data / name).touch()
    star = data / "tomograms.star"
    star.write_text("data_\n\nloop_\n_rlnIndex #1\n_rlnMicrographName #2\n_rlnPixelSize #3\n_rlnDefocus #4\n"
                    "_rlnNumberSubtomo #5\n1 a.mrc 10.0 0.0 4\n2 b.mrc 10.0 30000.0 4\n")
    out = tmp_path / "out"
    common = ["-stub", "--input", str(star), "--phantom", "false", "--number_subtomos", "4", "--iterations", "1",
              "--filter_base", "8", "--unet_depth", "2", "--predict_cube_size", "32", "--predict_crop_size", "48"]
    ok(nextflow(tmp_path, *common, "--outdir", str(out), "--tomo_idx", "1"))
    assert not tasks_of(trace(out), "ISONET_DECONV")
    out2 = tmp_path / "out2"
    ok(nextflow(tmp_path, *common, "--outdir", str(out2), "--tomo_idx", "1-2"))
    assert len(tasks_of(trace(out2), "ISONET_DECONV")) == 1


def test_stub_one_fsc_per_tomogram(tmp_path):
    """A folder of two tomograms with --halves: one FSC task per tomogram, each with its mask."""
    data = tmp_path / "tomos"
    data.mkdir()
    for name in ("b.rec", "a.mrc", "notes.txt"):
        (data / name).touch()
    out = tmp_path / "out"
    ok(nextflow(tmp_path, "-profile", "test", "-stub", "--phantom", "false", "--input", str(data),
                "--outdir", str(out)))
    assert sorted(p.name for p in (out / "fsc").glob("*.json")) == ["a_fsc.json", "b_fsc.json"]
    assert sorted(row["tag"] for row in tasks_of(trace(out), "ISONET_FSC")) == ["a", "b"]


def test_site_config_images_reach_every_process(tmp_path):
    """params.container_cpu/gpu set in a -c site config reach every task (trace's container)."""
    site = tmp_path / "site.config"
    site.write_text("params {\n    container_cpu = 'registry.example.org/cryoem/isonet-nf:site-cpu'\n"
                    "    container_gpu = 'registry.example.org/cryoem/isonet-nf:site-cuda'\n}\n")
    out = tmp_path / "out"
    ok(nextflow(tmp_path, "-profile", "test", "-stub", "-c", str(site), "--outdir", str(out), "--use_gpu", "true"))
    rows = trace(out)
    gpu_steps = {"ISONET_REFINE_INIT", "ISONET_REFINE_ITERATION", "ISONET_PREDICT_HALF1", "ISONET_PREDICT_HALF2"}
    assert len(rows) >= 10
    for row in rows:
        want = "site-cuda" if row["process"].split(":")[-1] in gpu_steps else "site-cpu"
        assert row["container"] == f"registry.example.org/cryoem/isonet-nf:{want}", row


def test_parameters_are_checked_before_any_task(tmp_path):
    """A misspelt and an ill-typed parameter: one line each, non-zero exit, no task started."""
    out = tmp_path / "out"
    run = nextflow(tmp_path, "-profile", "test", "-stub", "--outdir", str(out), "--iteratons", "3",
                   "--cube_size", "big", "--noise_mode", "gaussian", "--halves", "maybe")
    assert run.returncode != 0
    text = run.stdout + run.stderr
    assert "--iteratons: not a parameter of this pipeline; did you mean --iterations?" in text
    assert "--cube_size big: not a whole number" in text
    assert "--noise_mode gaussian: not one of noFilter, ramp, hamming" in text
    assert "--halves maybe: not a boolean" in text
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_bad_predict_tiles_stop_the_prepare_task_with_the_package_s_line(tmp_path):
    """Tiles predict would refuse after refine: prepare-star refuses them by the package's rule, and nothing trains."""
    out = tmp_path / "out"
    run = nextflow(tmp_path, "-profile", "test", "-stub", "--outdir", str(out), "--predict_cube_size", "96",
                   "--predict_crop_size", "64")
    assert run.returncode != 0
    text = run.stdout + run.stderr
    assert "Error: --predict-crop-size 64 with --predict-cube-size 96: crop must be at least cube + 8" in text
    assert "ISONET_PREPARE_STAR" in text and "REFINE" not in text


def test_awsbatch_needs_the_aws_cli_path(tmp_path):
    run = nextflow(tmp_path, "-profile", "awsbatch", "-stub", "--input", str(tmp_path))
    assert run.returncode != 0
    assert "--aws_cli_path is missing" in run.stdout + run.stderr


def test_help_lists_every_parameter(tmp_path):
    run = ok(nextflow(tmp_path, "--help"))
    text = run.stdout + run.stderr
    for name in ("--input", "--iterations", "--halves", "--gpu_type", "--container_cpu"):
        assert name in text
    assert "[default: 30]" in text


def test_resource_limits_follow_the_machine(tmp_path):
    """Without a cluster profile, resourceLimits is this machine's CPUs and memory."""
    line = next(text for text in _flat_config(tmp_path).splitlines() if text.startswith("process.resourceLimits"))
    assert f"cpus:{os.cpu_count()}" in line.replace(" ", "")
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024 ** 3
    assert f"{memory_gb} GB" in line or f"{memory_gb}GB" in line.replace(" ", "")
    slurm = _flat_config(tmp_path, "-profile", "slurm")
    assert "cpus:16" in next(t for t in slurm.splitlines() if t.startswith("process.resourceLimits")).replace(" ", "")


def _flat_config(tmp_path: Path, *args: str) -> str:
    run = subprocess.run(["nextflow", "config", str(ROOT), "-flat", *args], cwd=tmp_path, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_google_gpu_tasks_name_the_gpu_model_and_machine(tmp_path):
    """Google Batch attaches a GPU only with its model: the gpu label asks for one with a type."""
    flat = _flat_config(tmp_path, "-profile", "google,gpu")
    accelerator = next(t for t in flat.splitlines() if "process_gpu'.accelerator" in t)
    assert "type: params.gpu_type" in accelerator
    assert "params.google_gpu_machine_type" in next(t for t in flat.splitlines() if "process_gpu'.machineType" in t)
    assert "params.gpu_type = 'nvidia-l4'" in flat


def test_no_deprecated_directory_listing_or_when_blocks():
    """listFiles() is deprecated in newer Nextflow; modules have no when: (the workflow filters)."""
    for path in [MAIN, *ROOT.glob("workflows/*.nf"), *ROOT.glob("subworkflows/local/*/main.nf"),
                 *ROOT.glob("modules/local/*/main.nf")]:
        text = path.read_text()
        assert "listFiles(" not in text and "listDirectory(" not in text, path
        assert "\n    when:" not in text, path


# --------------------------------------------------------------------------------------------
# real runs: the test profile, interrupted and resumed
# --------------------------------------------------------------------------------------------

def _wait_for_iteration(work: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Until a task has written refine iteration 1's model and its exit code 0 (the task's own
    files, not Nextflow's log, which it flushes late).
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"nextflow ended ({proc.returncode}) before the first refine iteration finished")
        for model in work.glob("*/*/models/model_iter01.keras"):
            exitcode = model.parents[1] / ".exitcode"
            if exitcode.exists() and exitcode.read_text().strip() == "0":
                return
        time.sleep(0.5)
    raise AssertionError("the first refine iteration did not finish in time")


@pytest.mark.slow
def test_real_run_interrupted_and_resumed(tmp_path):
    """The test profile for real: stopped (SIGTERM) after refine iteration 1, resumed into a fresh outdir.

    Finished tasks come back CACHED, every step runs, the outdir holds the corrected tomograms
    (voxel size kept), the final model (the last iteration's, byte for byte) and report.html.
    """
    first = tmp_path / "first"
    args = ["-profile", "test", "--iterations", "2"]
    log = tmp_path / "first.log"
    proc = subprocess.Popen(["nextflow", "-log", str(log), "run", str(MAIN), *args, "--outdir", str(first)],
                            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_iteration(tmp_path / "work", proc, timeout=900)
        # SIGTERM, as a scheduler's wall-time kill sends: SIGINT may be ignored (a job started in the
        # background of a non-interactive shell inherits SIG_IGN, and the JVM then never sees it)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and not (first / "report.html").exists(), "the first run was not interrupted"
    assert not (first / "refine").exists(), "refine/ must hold the last iteration only"

    second = tmp_path / "second"
    ok(nextflow(tmp_path, "-resume", *args, "--outdir", str(second), timeout=1800))
    rows = trace(second)
    status = {row["name"]: row["status"] for row in rows}
    cached = {name for name, value in status.items() if value == "CACHED"}
    assert any("ISONET_EXTRACT" in name for name in cached)
    assert any("iteration 1)" in name for name in cached)
    assert all(value in ("CACHED", "COMPLETED") for value in status.values())
    for step in ("ISONET_MAKE_PHANTOM", "ISONET_PREPARE_STAR", "ISONET_MAKE_MASK", "ISONET_EXTRACT",
                 "ISONET_REFINE_INIT", "ISONET_PREDICT_HALF1", "ISONET_PREDICT_HALF2", "ISONET_FSC", "ISONET_REPORT"):
        assert tasks_of(rows, step), step
    assert len(tasks_of(rows, "ISONET_REFINE_ITERATION")) == 4  # two iterations of each half's network

    # every step found its tomograms where the STAR names them (no 'found by name' fallback)
    for row in rows:
        log = Path(row["workdir"]) / ".command.log"
        assert "found by name" not in log.read_text(errors="replace"), (row["name"], log)
    for half in ("half1", "half2"):
        iterations = [row for row in tasks_of(rows, "ISONET_REFINE_ITERATION")
                      if f"REFINE_{half.upper()}" in row["process"]]
        last = max(iterations, key=lambda row: int(row["tag"].split()[-1]))
        published = second / "refine" / half / "model_final.keras"
        assert md5(published) == md5(Path(last["workdir"]) / "refine_state" / "model_final.keras")
        assert (second / "refine" / half / "model_iter02.keras").exists()
        assert len(list((second / "models" / half).glob("model_iter*.keras"))) == 2

    phantom = second / "phantom" / "tomo.mrc"
    for half in ("half1", "half2"):
        corrected = second / "corrected_tomos" / f"tomo_{half}_corrected.mrc"
        with mrcfile.open(corrected, permissive=False) as out, mrcfile.open(phantom) as raw:
            assert out.data.shape == raw.data.shape
            assert float(out.voxel_size.x) == pytest.approx(float(raw.voxel_size.x))
            assert float(out.data.std()) > 0
    report = (second / "report.html").read_text()
    assert "<html" in report[:2000].lower()
    # both halves' refine states and the FSC reached the report task (--refine-dir, --fsc)
    assert "refine half 2" in report and "2 of 2 iterations" in report and "fsc/tomo_fsc.json" in report
    # the FSC split by the tomogram's wedge: its tilt range came from the predict STAR's row
    fsc = json.loads((second / "fsc" / "tomo_fsc.json").read_text())
    assert {"measured", "wedge"} <= set(fsc["directions"]), fsc["directions"]
    # the published prepare_star STAR names the tomogram where it was published (relative to the
    # STAR, as IsoNet resolves names), not the task's staged copy
    prepared = starfile.read(second / "star" / "prepare_star.star")
    assert list(prepared["rlnMicrographName"]) == ["../phantom/tomo.mrc"]
    assert (second / "star" / "../phantom/tomo.mrc").resolve() == phantom.resolve()


def _relion_project_with_halves(root: Path) -> Path:
    """A one-tomogram RELION 5 project (tilt series STAR with aligned angles, both halves), big enough to extract."""
    from test_inputs_relion_tlt import _blob_volume
    from test_relion5 import DEFOCUS_01, JOB, STAGE_01, VOXEL, YTILT_01, _global, _row, _tilt_series_text, _write_text

    from isonet_steps.io.mrc import write_volume

    _write_text(root / "AlignTiltSeries/job004/tilt_series/TS_01.star",
                _tilt_series_text("TS_01", STAGE_01, DEFOCUS_01, YTILT_01))
    for i, suffix in enumerate(("", "_half1", "_half2")):
        write_volume(root / JOB / "tomograms" / f"rec_TS_01{suffix}.mrc", _blob_volume((48, 64, 64), i), VOXEL)
    return _write_text(root / JOB / "tomograms.star", _global([_row("TS_01", halves=True)]))


@pytest.mark.slow
def test_real_run_on_a_relion5_project_with_noise2noise(tmp_path):
    """A RELION 5 project for real: its angles, CTF and halves in, noise2noise training, the corrected
    tomogram and halves out, and a RELION 5 tomograms.star naming the published correction.
    """
    from test_relion5 import YTILT_01

    from isonet_steps.io.tilt_angles import read_tilt_angles

    star = _relion_project_with_halves(tmp_path / "relion")
    out = tmp_path / "out"
    ok(nextflow(tmp_path, "-profile", "test", "--phantom", "false", "--input", str(star), "--halves", "false",
                "--noise2noise", "true", "--iterations", "1", "--number_subtomos", "8", "--cube_size", "16",
                "--crop_size", "24", "--predict_cube_size", "16", "--predict_crop_size", "32", "--outdir", str(out)))
    rows = trace(out)
    for step in ("ISONET_PREPARE_STAR", "ISONET_DECONV", "ISONET_MAKE_MASK", "ISONET_EXTRACT", "ISONET_REFINE_INIT",
                 "ISONET_PREDICT", "ISONET_REPORT"):
        assert tasks_of(rows, step), step  # deconv too: RELION's CTF estimation gave the defocus
    assert read_tilt_angles(out / "star" / "tilt_angles" / "TS_01.tlt") == pytest.approx(sorted(YTILT_01))
    state = json.loads((out / "refine" / "refine_state.json").read_text())
    assert state["settings"]["noise2noise"] is True
    corrected = out / "corrected_tomos"
    for name in ("rec_TS_01_corrected.mrc", "rec_TS_01_half1_corrected.mrc", "rec_TS_01_half2_corrected.mrc"):
        with mrcfile.open(corrected / name, permissive=False) as volume:
            assert volume.data.shape == (48, 64, 64) and float(volume.data.std()) > 0
    relion = starfile.read(corrected / "relion5_tomograms.star", always_dict=True)["global"]
    named = Path(relion["rlnTomoReconstructedTomogram"].iloc[0])
    assert named.is_absolute() and named.resolve() == (corrected / "rec_TS_01_corrected.mrc").resolve()
    for column in ("rlnTomoName", "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnTomoHand",
                   "rlnTomoTiltSeriesPixelSize", "rlnTomoTiltSeriesStarFile"):
        assert column in relion.columns, column
    report = (out / "report.html").read_text()
    assert "Where the halves disagree" in report
    assert "1 of 1 iterations" in report and "Not run: no refine_state.json" not in report  # the state reached it


@pytest.mark.slow
def test_real_run_on_an_imod_folder_with_tlt(tmp_path):
    """An IMOD folder (TS_01.mrc + TS_01.tlt with a gap) for real: the angles reach prepare, travel to refine,
    which trains on them, and the published STAR names them.
    """
    from test_inputs_relion_tlt import GAP_SERIES, imod_folder

    from isonet_steps.io.tilt_angles import read_tilt_angles

    folder = imod_folder(tmp_path / "imod")
    out = tmp_path / "out"
    ok(nextflow(tmp_path, "-profile", "test", "--phantom", "false", "--input", str(folder), "--halves", "false",
                "--iterations", "1", "--number_subtomos", "8", "--cube_size", "16", "--crop_size", "24",
                "--predict_cube_size", "16", "--predict_crop_size", "32", "--outdir", str(out)))
    prepared = starfile.read(out / "star" / "prepare_star.star")
    assert list(prepared["rlnTiltAngleFile"]) == ["tilt_angles/TS_01.tlt"]
    assert (prepared["rlnTiltMin"].iloc[0], prepared["rlnTiltMax"].iloc[0]) == (-60.0, 60.0)
    assert read_tilt_angles(out / "star" / "tilt_angles" / "TS_01.tlt") == pytest.approx(GAP_SERIES)
    state = json.loads((out / "refine" / "refine_state.json").read_text())
    assert [tuple(a) for a in state["data"]["angles"]] == [tuple(GAP_SERIES)] * len(state["data"]["names"])
    with mrcfile.open(out / "corrected_tomos" / "TS_01_corrected.mrc", permissive=False) as volume:
        assert volume.data.shape == (48, 64, 64) and float(volume.voxel_size.x) == pytest.approx(10.0)
