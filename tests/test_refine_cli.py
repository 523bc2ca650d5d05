"""isonet refine as a user runs it: options, one-line errors, kill -9 and continue."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from isonet_steps.io.mrc import write_volume
from isonet_steps.io.star import write_star

TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--filter_base", "4", "--unet-depth", "2",
        "--convs-per-depth", "2", "--noise-level", "0.1", "--noise-start-iter", "2", "--seed", "1", "--gpus", "cpu"]


@pytest.fixture(scope="module")
def subtomo_star(tmp_path_factory):
    root = tmp_path_factory.mktemp("sub")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        cube = ndimage.gaussian_filter(rng.standard_normal((24, 24, 24)), 1.5).astype(np.float32)
        write_volume(root / "subtomo" / f"t.rec_{i:06d}.mrc", cube, 10.0)
        rows.append({"rlnSubtomoIndex": i + 1, "rlnImageName": f"subtomo/t.rec_{i:06d}.mrc", "rlnCubeSize": 16,
                     "rlnCropSize": 24, "rlnPixelSize": 10.0, "rlnTiltMin": -60.0, "rlnTiltMax": 60.0,
                     "rlnRandomSubset": 1 + i % 2})
    write_star(pd.DataFrame(rows), root / "subtomo.star")
    return root / "subtomo.star"


def _isonet(*args, cwd, **kw):
    env = {**os.environ, "ISONET_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "isonet_steps", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, **kw)


def _weights(path):
    from isonet_steps.network.unet import load_model

    return load_model(path).get_weights()


def test_refine_cli_runs_and_halves(subtomo_star, tmp_path):
    r = _isonet("refine", str(subtomo_star), "--result-dir", "res", "--iterations", "1", "--halves", *TINY,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for half in ("half1", "half2"):
        state = json.loads((tmp_path / "res" / half / "refine_state.json").read_text())
        assert state["completed"] == 1
        assert len(state["data"]["names"]) == 3  # its own half only
        assert (tmp_path / "res" / half / "model_final.keras").exists()
        assert (tmp_path / "res" / half / "refine.log").stat().st_size > 0
    names1 = set(json.loads((tmp_path / "res/half1/refine_state.json").read_text())["data"]["names"])
    names2 = set(json.loads((tmp_path / "res/half2/refine_state.json").read_text())["data"]["names"])
    assert not names1 & names2


@pytest.mark.parametrize("args,needle", [
    (["--noise-level", "0.1,0.2", "--noise-start-iter", "3"], "one start iteration per level"),
    (["--noise-level", "abc"], "comma-separated"),
    (["--dropout", "1.5"], "--dropout"),
    (["--gpus", "zero"], "--gpus"),
    (["--iterations", "0"], "--iterations"),
])
def test_refine_bad_options_one_line(subtomo_star, tmp_path, args, needle):
    r = _isonet("refine", str(subtomo_star), "--result-dir", "res", *args, cwd=tmp_path)
    assert r.returncode != 0
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "res" / "model_iter01.keras").exists()


def test_refine_missing_star(tmp_path):
    r = _isonet("refine", "nope.star", "--gpus", "cpu", cwd=tmp_path)
    assert r.returncode == 2 and "nope.star" in r.stderr and "Traceback" not in r.stderr


def test_kill_9_then_continue_gives_the_uninterrupted_model(subtomo_star, tmp_path):
    ref = _isonet("refine", str(subtomo_star), "--result-dir", "a", "--iterations", "4", *TINY, cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    env = {**os.environ, "ISONET_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "isonet_steps", "refine", str(subtomo_star), "--result-dir", "b",
                             "--iterations", "4", *TINY], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = tmp_path / "b" / "refine_state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state_file.exists() and json.loads(state_file.read_text())["completed"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(state_file.read_text())["completed"]
    assert 2 <= done < 4, "the kill should land mid-run"
    again = _isonet("refine", str(subtomo_star), "--result-dir", "b", "--iterations", "4", *TINY, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "continuing" in again.stderr
    for wa, wb in zip(_weights(tmp_path / "a" / "model_final.keras"), _weights(tmp_path / "b" / "model_final.keras")):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
    leftovers = [p.name for p in (tmp_path / "b").rglob("*.part")]
    assert not leftovers


def test_changed_setting_refused_on_continue(subtomo_star, tmp_path):
    first = _isonet("refine", str(subtomo_star), "--result-dir", "c", "--iterations", "1", *TINY, cwd=tmp_path)
    assert first.returncode == 0
    r = _isonet("refine", str(subtomo_star), "--result-dir", "c", "--iterations", "2", *TINY, "--learning-rate", "0.01",
                cwd=tmp_path)
    assert r.returncode == 2 and "learning_rate" in r.stderr and "--no-continue" in r.stderr
    r = _isonet("refine", str(subtomo_star), "--result-dir", "c", "--iterations", "1", *TINY, "--learning-rate", "0.01",
                "--no-continue", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c~" / "refine_state.json").exists()
