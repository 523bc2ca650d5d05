"""isonet run: the whole pipeline, resumable step by step; gold-standard halves; kill -9 and rerun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from isonet_steps.core.phantom import make_phantom
from isonet_steps.io.mrc import write_volume
from isonet_steps.io.star import read_star, write_star

TINY = ["--number-subtomos", "12", "--cube-size", "16", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4",
        "--filter-base", "4", "--unet-depth", "2", "--convs-per-depth", "2", "--noise-level", "0.05",
        "--noise-start-iter", "2", "--predict-cube-size", "16", "--predict-crop-size", "32", "--gpus", "cpu"]


@pytest.fixture(scope="module")
def star_with_halves(tmp_path_factory):
    """A phantom tomogram with RELION 5 even/odd half tomograms named in its STAR."""
    root = tmp_path_factory.mktemp("data")
    p = make_phantom((40, 64, 64), seed=2, halves=True)
    for name, vol in (("tomo.mrc", p.tomogram), ("even.mrc", p.half1), ("odd.mrc", p.half2)):
        write_volume(root / name, vol, 10.0)
    write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["tomo.mrc"], "rlnPixelSize": [10.0],
                             "rlnDefocus": [0.0], "rlnNumberSubtomo": [12],
                             "rlnTomoReconstructedTomogramHalf1": ["even.mrc"],
                             "rlnTomoReconstructedTomogramHalf2": ["odd.mrc"]}), root / "tomograms.star")
    return root / "tomograms.star"


def _run(*args, cwd):
    env = {**os.environ, "ISONET_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "isonet_steps", "run", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)


def _records(out: Path) -> dict:
    """Every step record by step name (a tomogram's step: ``<step>/<tomogram>``)."""
    steps = out / ".isonet" / "steps"
    return {p.relative_to(steps).with_suffix("").as_posix(): json.loads(p.read_text()) for p in steps.rglob("*.json")}


def test_run_with_halves_then_rerun_skips_then_change_reruns_what_it_affects(star_with_halves, tmp_path):
    out = tmp_path / "run"
    args = ["--input", star_with_halves, "--outdir", out, "--iterations", "2", "--halves", *TINY]
    first = _run(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    table = read_star(out / "tomograms_corrected.star")
    for column in ("rlnCorrectedTomoName", "rlnCorrectedTomoHalf1", "rlnCorrectedTomoHalf2", "rlnGoldStandardFsc",
                   "rlnRawHalvesFsc", "rlnCorrectedHalvesFsc"):
        assert column in table.columns, column
        assert Path(table[column].iloc[0]).exists(), column
    fsc = json.loads(Path(table["rlnGoldStandardFsc"].iloc[0]).read_text())
    assert set(fsc["resolution_A"]) == {"0.5", "0.143"}
    # the six directions, and the measured region and missing wedge of the row's tilt range
    assert set(fsc["resolution_A"]["0.143"]) == {"global", "x", "y", "z", "xy", "xz", "yz", "measured", "wedge"}
    assert (out / "report.html").exists()
    records = _records(out)
    assert set(records) == {"prepare", "make_mask/tomo", "merge_mask", "extract/tomo", "merge_subtomo", "refine",
                            "gold_standard/tomo", "merge_corrected"}

    again = _run(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("already done, skipped") == 8
    assert _records(out) == records

    changed = _run(*args, "--learning-rate", "0.001", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr[-3000:]
    after = _records(out)
    for step in ("prepare", "make_mask/tomo", "merge_mask", "extract/tomo", "merge_subtomo"):
        assert after[step] == records[step], step
    for step in ("refine", "gold_standard/tomo", "merge_corrected"):
        assert after[step]["key"] != records[step]["key"], step


def test_kill_during_refine_then_rerun_continues(star_with_halves, tmp_path):
    out = tmp_path / "run"
    args = ["--input", star_with_halves, "--outdir", out, "--iterations", "4", *TINY]
    env = {**os.environ, "ISONET_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "isonet_steps", "run", *map(str, args)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "refine" / "refine_state.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["completed"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = json.loads(state.read_text())
    assert 2 <= before["completed"] < 4, "the kill should land during refine"
    extract_record = (out / ".isonet" / "steps" / "extract" / "tomo.json").read_text()

    rerun = _run(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "refine: continuing" in rerun.stderr
    # prepare, make_mask/tomo, merge_mask, extract/tomo, merge_subtomo
    assert rerun.stderr.count("already done, skipped") == 5
    assert (out / ".isonet" / "steps" / "extract" / "tomo.json").read_text() == extract_record
    after = json.loads(state.read_text())
    assert after["completed"] == 4
    # the iterations finished before the kill were not redone
    assert after["iterations"][: before["completed"]] == before["iterations"]
    assert (out / "tomograms_corrected.star").exists()


def test_run_bad_input_one_line(tmp_path):
    r = _run("--input", tmp_path / "missing", "--outdir", tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 2 and "missing" in r.stderr and "Traceback" not in r.stderr
    params = tmp_path / "p.yaml"
    params.write_text("cube_size: 32\nnot_a_param: 3\n")
    r = _run("--input", tmp_path, "--outdir", tmp_path / "o", "--params-file", params, cwd=tmp_path)
    assert r.returncode == 2 and "not_a_param" in r.stderr and "Traceback" not in r.stderr


def test_run_refuses_predict_tiles_before_any_work(star_with_halves, tmp_path):
    out = tmp_path / "bad_tiles"
    result = _run("--input", star_with_halves, "--outdir", out, "--predict-cube-size", "96",
                  "--predict-crop-size", "64",
                  "--gpus", "cpu", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert "--predict-crop-size 64 with --predict-cube-size 96" in lines[-1] and "use --predict-crop-size" in lines[-1]
    assert not (out / "tomograms.star").exists() and not list(out.glob("**/*.mrc"))


def test_a_tomogram_added_to_the_folder_runs_its_own_steps_then_the_gathers(tmp_path):
    """Adding a tomogram redoes its own steps, the gathers, refine (its subtomograms changed) and what follows;
    the first tomogram's mask and subtomograms are kept as they were.
    """
    folder = tmp_path / "tomograms"
    for seed, name in ((2, "a.mrc"), (5, "b.mrc")):
        write_volume(tmp_path / name, make_phantom((40, 64, 64), seed=seed).tomogram, 10.0)
    folder.mkdir()
    (tmp_path / "a.mrc").rename(folder / "a.mrc")
    out = tmp_path / "run"
    args = ["--input", folder, "--outdir", out, "--iterations", "1", "--wedge-check", "off", *TINY]
    first = _run(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    records = _records(out)
    assert set(records) == {"prepare", "make_mask/a", "merge_mask", "extract/a", "merge_subtomo", "refine",
                            "predict/a", "merge_corrected"}

    (tmp_path / "b.mrc").rename(folder / "b.mrc")
    second = _run(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    after = _records(out)
    assert set(after) == set(records) | {"make_mask/b", "extract/b", "predict/b"}
    for step in ("make_mask/a", "extract/a"):  # not redone: same record, same outputs
        assert after[step] == records[step], step
        assert f"{step}: already done, skipped" in second.stderr
    for step in ("prepare", "merge_mask", "merge_subtomo", "refine", "predict/a", "merge_corrected"):
        assert after[step]["key"] != records[step]["key"], step
    subtomos = read_star(out / "subtomo.star")
    assert len(subtomos) == 24 and sorted({Path(n).name[:2] for n in subtomos["rlnImageName"]}) == ["a_", "b_"]
    first_subtomos = [p for p in records["extract/a"]["outputs"] if p.endswith(".mrc")]
    assert len(first_subtomos) == 12 and all(p in after["merge_subtomo"]["outputs"] for p in first_subtomos)
    corrected = read_star(out / "tomograms_corrected.star")
    assert list(corrected["rlnIndex"]) == [1, 2]
    assert [Path(p).name for p in corrected["rlnCorrectedTomoName"]] == ["a_corrected.mrc", "b_corrected.mrc"]
    assert all(Path(p).is_file() for p in corrected["rlnCorrectedTomoName"])
