"""noise2noise wired through the steps: extract cuts the same boxes from both half tomograms, refine reads them."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from isonet_steps.io.columns import IMAGE_NAME_HALF2
from isonet_steps.io.errors import InputError
from isonet_steps.io.mrc import read_volume, write_volume
from isonet_steps.io.star import read_subtomo_star, write_star
from isonet_steps.steps.extract import run_extract
from isonet_steps.steps.refine import load_subtomos

SHAPE = (24, 40, 40)


def _star(root, halves=True, number=6):
    """A random tomogram and two different random 'half' tomograms named in a tomograms.star."""
    rng = np.random.default_rng(0)
    columns = {"rlnIndex": [1], "rlnMicrographName": ["tomo.mrc"], "rlnPixelSize": [10.0], "rlnDefocus": [0.0],
               "rlnNumberSubtomo": [number], "rlnTiltMin": [-60.0], "rlnTiltMax": [60.0]}
    names = ["tomo.mrc", "even.mrc", "odd.mrc"] if halves else ["tomo.mrc"]
    for name in names:
        write_volume(root / name, rng.standard_normal(SHAPE).astype(np.float32), 10.0)
    if halves:
        columns |= {"rlnTomoReconstructedTomogramHalf1": ["even.mrc"], "rlnTomoReconstructedTomogramHalf2": ["odd.mrc"]}
    write_star(pd.DataFrame(columns), root / "tomograms.star")
    return root / "tomograms.star"


def _box(volume, row, crop):
    z, y, x = (int(row[f"rlnCoordinate{a}"]) for a in "ZYX")
    h = crop // 2
    return volume[z - h:z - h + crop, y - h:y - h + crop, x - h:x - h + crop]


def test_extract_noise2noise_cuts_the_same_box_from_each_half(tmp_path):
    star = _star(tmp_path)
    out = run_extract(star, subtomo_folder=tmp_path / "sub", subtomo_star=tmp_path / "subtomo.star", cube_size=8,
                      crop_size=16, noise2noise=True)
    table = read_subtomo_star(out)
    assert len(table) == 6 and IMAGE_NAME_HALF2 in table.columns
    even, odd = (read_volume(tmp_path / n, "t").data for n in ("even.mrc", "odd.mrc"))
    for _, row in table.iterrows():
        first = read_volume(row["rlnImageName"], "s").data
        second = read_volume(row[IMAGE_NAME_HALF2], "s").data
        np.testing.assert_array_equal(first, _box(even, row, 16))
        np.testing.assert_array_equal(second, _box(odd, row, 16))
        assert not np.array_equal(first, second)


def test_extract_default_path_writes_no_half2_column(tmp_path):
    table = read_subtomo_star(run_extract(_star(tmp_path), subtomo_folder=tmp_path / "sub",
                                          subtomo_star=tmp_path / "subtomo.star", cube_size=8, crop_size=16))
    assert IMAGE_NAME_HALF2 not in table.columns
    tomo = read_volume(tmp_path / "tomo.mrc", "t").data
    np.testing.assert_array_equal(read_volume(table["rlnImageName"].iloc[0], "s").data,
                                  _box(tomo, table.iloc[0], 16))


def test_extract_noise2noise_without_halves_is_one_clear_error(tmp_path):
    star = _star(tmp_path, halves=False)
    with pytest.raises(InputError, match="rlnTomoReconstructedTomogramHalf1.*without --noise2noise"):
        run_extract(star, subtomo_folder=tmp_path / "sub", subtomo_star=tmp_path / "subtomo.star", cube_size=8,
                    crop_size=16, noise2noise=True)
    assert not (tmp_path / "subtomo.star").exists() and not (tmp_path / "sub").exists()


def test_load_subtomos_gives_the_second_half_in_order(tmp_path):
    out = run_extract(_star(tmp_path), subtomo_folder=tmp_path / "sub", subtomo_star=tmp_path / "subtomo.star",
                      cube_size=8, crop_size=16, noise2noise=True)
    data = load_subtomos(out, noise2noise=True)
    table = read_subtomo_star(out)
    assert data.second_half is not None and data.second_half.shape == data.subtomos.shape == (6, 16, 16, 16)
    for k in (0, 5):
        np.testing.assert_array_equal(data.second_half[k], read_volume(table[IMAGE_NAME_HALF2].iloc[k], "s").data)
    assert load_subtomos(out).second_half is None


def test_load_subtomos_noise2noise_without_the_column_is_one_clear_error(tmp_path):
    out = run_extract(_star(tmp_path), subtomo_folder=tmp_path / "sub", subtomo_star=tmp_path / "subtomo.star",
                      cube_size=8, crop_size=16)
    with pytest.raises(InputError, match="rlnImageNameHalf2.*extract with --noise2noise"):
        load_subtomos(out, noise2noise=True)


def test_cli_refine_noise2noise_without_the_column_exits_with_one_line(tmp_path):
    out = run_extract(_star(tmp_path), subtomo_folder=tmp_path / "sub", subtomo_star=tmp_path / "subtomo.star",
                      cube_size=8, crop_size=16)
    result = subprocess.run([sys.executable, "-m", "isonet_steps", "refine", str(out), "--noise2noise",
                             "--result-dir", str(tmp_path / "r"), "--gpus", "cpu"], capture_output=True, text=True,
                            env={**os.environ, "ISONET_NO_PROGRESS": "1"})
    assert result.returncode != 0 and "rlnImageNameHalf2" in result.stderr
    assert "Traceback" not in result.stderr


def test_tiny_run_with_noise2noise_corrects_the_halves_and_reports_where_they_disagree(tmp_path):
    """A tiny run --noise2noise on a phantom with even/odd halves: trained, the halves corrected, the map reported."""
    from isonet_steps.core.phantom import make_phantom
    from isonet_steps.io.star import read_star

    p = make_phantom((40, 64, 64), seed=2, halves=True)
    for name, vol in (("tomo.mrc", p.tomogram), ("even.mrc", p.half1), ("odd.mrc", p.half2)):
        write_volume(tmp_path / name, vol, 10.0)
    write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["tomo.mrc"], "rlnPixelSize": [10.0],
                             "rlnDefocus": [0.0], "rlnNumberSubtomo": [8],
                             "rlnTomoReconstructedTomogramHalf1": ["even.mrc"],
                             "rlnTomoReconstructedTomogramHalf2": ["odd.mrc"]}), tmp_path / "tomograms.star")
    out = tmp_path / "out"
    tiny = ["--number-subtomos", "8", "--cube-size", "16", "--iterations", "1", "--epochs", "1", "--steps-per-epoch",
            "1", "--batch-size", "4", "--filter-base", "4", "--unet-depth", "2", "--convs-per-depth", "2",
            "--predict-cube-size", "16", "--predict-crop-size", "32", "--gpus", "cpu"]
    result = subprocess.run([sys.executable, "-m", "isonet_steps", "run", "--input", str(tmp_path / "tomograms.star"),
                             "--outdir", str(out), "--noise2noise", *tiny], capture_output=True, text=True,
                            env={**os.environ, "ISONET_NO_PROGRESS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert IMAGE_NAME_HALF2 in read_subtomo_star(out / "subtomo.star").columns
    from isonet_steps.io.checkpoint import RefineStore

    saved = json.loads(RefineStore(out / "refine").state_path.read_text())
    assert saved["settings"]["noise2noise"] is True and len(saved["data"]["second_names"]) == 8
    row = read_star(out / "tomograms_corrected.star").iloc[0]
    halves = [read_volume(row[f"rlnCorrectedTomoHalf{h}"], "c").data for h in (1, 2)]
    assert halves[0].shape == halves[1].shape == (40, 64, 64) and not np.array_equal(*halves)
    report = (out / "report.html").read_text()
    assert "Where the halves disagree" in report and "agreement of the halves" in report
