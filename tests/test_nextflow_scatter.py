"""The scatter under the real Nextflow runtime: one task per tomogram, halves side by side, --train_idx, --model.

Stub runs over a folder of four tomograms: the plan prepare-star writes (its real code runs in the
stub, without reading the data) decides the tasks, so the counts below are the package's rules
seen through Nextflow. Select with ``-m nextflow``.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from test_nextflow_runtime import nextflow, ok, pytestmark, tasks_of, trace  # noqa: F401 (pytestmark: the marks)

from isonet_steps.io.star import write_star

PER_TOMOGRAM = ("ISONET_MAKE_MASK", "ISONET_EXTRACT")
STUB = ["-stub", "--iterations", "2", "--filter_base", "8", "--unet_depth", "2", "--predict_cube_size", "32",
        "--predict_crop_size", "48"]


@pytest.fixture
def four(tmp_path) -> Path:
    data = tmp_path / "tomos"
    data.mkdir()
    for i in range(1, 5):
        (data / f"TS_0{i}.mrc").touch()
    return data


def _processes(rows, name):
    return sorted(row["process"] for row in tasks_of(rows, name))


def test_one_task_per_tomogram_and_two_predicts_each_with_halves(tmp_path, four):
    out = tmp_path / "out"
    ok(nextflow(tmp_path, *STUB, "--input", str(four), "--outdir", str(out), "--halves", "true"))
    rows = trace(out)
    for name in PER_TOMOGRAM:
        assert sorted(row["tag"] for row in tasks_of(rows, name)) == ["TS_01", "TS_02", "TS_03", "TS_04"], name
    predicts = [row["process"].split(":")[-1] for row in rows if "ISONET_PREDICT" in row["process"]]
    assert sorted(predicts) == ["ISONET_PREDICT_HALF1"] * 4 + ["ISONET_PREDICT_HALF2"] * 4
    assert len(tasks_of(rows, "ISONET_FSC")) == 4 and len(tasks_of(rows, "ISONET_MERGE_SUBTOMOS")) == 1
    # two recursions, one per half network, each with its own iterations
    iterations = _processes(rows, "ISONET_REFINE_ITERATION")
    assert sum("REFINE_HALF1" in p for p in iterations) == 2 and sum("REFINE_HALF2" in p for p in iterations) == 2
    assert sorted(p.name for p in (out / "refine").iterdir()) == ["half1", "half2"]
    assert (out / "star" / "plan" / "plan.csv").is_file() and (out / "report.html").is_file()


def test_train_on_two_correct_all(tmp_path, four):
    out = tmp_path / "out"
    ok(nextflow(tmp_path, *STUB, "--input", str(four), "--outdir", str(out), "--train_idx", "1,2"))
    rows = trace(out)
    assert sorted(row["tag"] for row in tasks_of(rows, "ISONET_EXTRACT")) == ["TS_01", "TS_02"]
    assert sorted(row["tag"] for row in tasks_of(rows, "ISONET_PREDICT")) == ["TS_01", "TS_02", "TS_03", "TS_04"]
    assert sorted(p.name for p in (out / "corrected_tomos").iterdir()) == [
        f"TS_0{i}_corrected.mrc" for i in range(1, 5)]


def test_tomo_idx_chooses_the_corrected_and_by_default_the_trained(tmp_path, four):
    out = tmp_path / "out"
    ok(nextflow(tmp_path, *STUB, "--input", str(four), "--outdir", str(out), "--tomo_idx", "2-3"))
    rows = trace(out)
    assert sorted(row["tag"] for row in tasks_of(rows, "ISONET_EXTRACT")) == ["TS_02", "TS_03"]
    assert sorted(row["tag"] for row in tasks_of(rows, "ISONET_PREDICT")) == ["TS_02", "TS_03"]
    assert sorted(row["tag"] for row in tasks_of(rows, "ISONET_MAKE_MASK")) == ["TS_02", "TS_03"]


def test_a_given_model_corrects_every_tomogram_without_refine(tmp_path, four):
    model = tmp_path / "trained.keras"
    model.touch()
    out = tmp_path / "out"
    ok(nextflow(tmp_path, *STUB, "--input", str(four), "--outdir", str(out), "--model", str(model)))
    rows = trace(out)
    assert not [row for row in rows if "REFINE" in row["process"] or "EXTRACT" in row["process"]]
    assert len(tasks_of(rows, "ISONET_PREDICT")) == 4 and (out / "report.html").is_file()
    for row in tasks_of(rows, "ISONET_PREDICT"):
        assert (Path(row["workdir"]) / "trained.keras").is_symlink()
    refused = nextflow(tmp_path, *STUB, "--input", str(four), "--outdir", str(tmp_path / "o2"), "--model", str(model),
                       "--halves", "true")
    assert refused.returncode != 0 and "--halves trains two networks" in refused.stdout + refused.stderr


def test_deconv_runs_only_for_tomograms_with_a_defocus(tmp_path, four):
    """An IsoNet tomograms.star with a defocus on two rows: two deconv tasks, four masks."""
    star = write_star(pd.DataFrame({"rlnIndex": [1, 2, 3, 4],
                                    "rlnMicrographName": [f"tomos/TS_0{i}.mrc" for i in range(1, 5)],
                                    "rlnPixelSize": [10.0] * 4, "rlnDefocus": [0.0, 25000.0, 0.0, 30000.0],
                                    "rlnNumberSubtomo": [4] * 4}), tmp_path / "tomograms.star")
    out = tmp_path / "out"
    ok(nextflow(tmp_path, *STUB, "--input", str(star), "--outdir", str(out)))
    rows = trace(out)
    assert sorted(row["tag"] for row in tasks_of(rows, "ISONET_DECONV")) == ["TS_02", "TS_04"]
    assert len(tasks_of(rows, "ISONET_MAKE_MASK")) == 4


def _span(row) -> tuple[float, float]:
    start = datetime.strptime(row["submit"], "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return start, start + _seconds(row["duration"])


def _seconds(text: str) -> float:
    total = 0.0
    for part in text.split():
        value, unit = float(part.rstrip("mshd")), part.lstrip("0123456789.")
        total += value * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


def test_the_two_halves_train_at_the_same_time(tmp_path):
    """With room for two GPU tasks, iterations of half 1 and half 2 overlap in time (each task sleeps 4 s)."""
    site = tmp_path / "two_slots.config"
    site.write_text("process {\n    withLabel: process_gpu {\n        cpus = 1\n    }\n"
                    "    withName: 'ISONET_REFINE_ITERATION' {\n        beforeScript = 'sleep 4'\n    }\n}\n")
    out = tmp_path / "out"
    started = time.time()
    ok(nextflow(tmp_path, "-profile", "test", "-stub", "-c", str(site), "--outdir", str(out)))
    rows = tasks_of(trace(out), "ISONET_REFINE_ITERATION")
    half1 = [_span(r) for r in rows if "REFINE_HALF1" in r["process"]]
    half2 = [_span(r) for r in rows if "REFINE_HALF2" in r["process"]]
    assert len(half1) == len(half2) == 2
    overlap = max(min(a[1], b[1]) - max(a[0], b[0]) for a in half1 for b in half2)
    assert overlap > 1.0, (half1, half2, time.time() - started)


def test_a_resume_into_another_outdir_reruns_nothing(tmp_path, four):
    """Every task's cache key is its inputs' content: nothing depends on --outdir or the launch folder's state."""
    ok(nextflow(tmp_path, *STUB, "--input", str(four), "--outdir", str(tmp_path / "a"), "--halves", "true"))
    ok(nextflow(tmp_path, *STUB, "--input", str(four), "--outdir", str(tmp_path / "b"), "--halves", "true", "-resume"))
    status = {row["name"]: row["status"] for row in trace(tmp_path / "b")}
    assert status and set(status.values()) == {"CACHED"}, {k: v for k, v in status.items() if v != "CACHED"}
