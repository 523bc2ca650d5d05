"""Modern inputs (issue #14): a RELION 5 project and .tlt files into prepare-star, the wedge checked on
the data, the angle file carried to subtomo.star, and a RELION 5 tomograms.star of the corrected
tomograms out of predict and ``isonet run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from click.testing import CliRunner
from test_relion5 import JOB, STAGE_02, VOXEL, YTILT_01, _project

from isonet_steps.core.phantom import make_phantom, tilt_angles
from isonet_steps.io.mrc import read_header, write_volume
from isonet_steps.io.relion5 import REQUIRED_GLOBAL, is_relion5_star
from isonet_steps.io.star import read_star, read_subtomo_star, read_tomogram_star, resolve_path, write_star
from isonet_steps.io.tilt_angles import read_tilt_angles, write_tilt_angles
from isonet_steps.steps.extract import run_extract
from isonet_steps.steps.prepare_star import run_prepare_star
from isonet_steps.steps.refine import load_subtomos

PHANTOM_RANGE = (-50.0, 65.0)  # asymmetric: its mirror is -65..50
BIG = (40, 64, 64)  # room for gold-standard slab halves of 32³ boxes


def _prepare(*args) -> tuple[int, str]:
    from isonet_steps.cli.prepare_star import command

    result = CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def _blob_volume(shape, seed: int) -> np.ndarray:
    """Noise with one dark blob: something for predict to keep, nothing a wedge check can read."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(size=shape).astype(np.float32)
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    volume -= 4.0 * np.exp(-((z - shape[0] / 2) ** 2 + (y - shape[1] / 2) ** 2 + (x - shape[2] / 2) ** 2) / 18.0)
    return volume


def _bigger_project(root: Path, shape=BIG) -> Path:
    """test_relion5's two-tomogram project with tomograms (and TS_01's halves) big enough to extract and predict."""
    star = _project(root)
    for i, name in enumerate(("rec_TS_01", "rec_TS_02", "rec_TS_01_half1", "rec_TS_01_half2")):
        write_volume(root / JOB / "tomograms" / f"{name}.mrc", _blob_volume(shape, i), VOXEL)
    return star


# --- RELION 5 in -------------------------------------------------------------------------------


def test_prepare_star_converts_a_relion5_project(tmp_path):
    root = tmp_path / "relion"
    star = _project(root)
    assert is_relion5_star(star)
    out = tmp_path / "run" / "tomograms.star"
    code, output = _prepare(star, "-o", out, "--number-subtomos", 7)
    assert code == 0, output
    table = read_tomogram_star(out)
    assert list(table["rlnTomoName"]) == ["TS_01", "TS_02"]
    assert list(table["rlnMicrographName"]) == [str(root / JOB / "tomograms" / f"rec_{n}.mrc")
                                                for n in ("TS_01", "TS_02")]
    assert np.allclose(table["rlnPixelSize"], VOXEL)  # pixel size × binning, not the --pixel-size default
    assert list(table["rlnNumberSubtomo"]) == [7, 7]
    assert table["rlnDefocus"].iloc[0] == pytest.approx((39424.76 + 38845.81) / 2)
    assert (table["rlnTiltMin"].iloc[0], table["rlnTiltMax"].iloc[0]) == (min(YTILT_01), max(YTILT_01))
    assert (table["rlnTiltMin"].iloc[1], table["rlnTiltMax"].iloc[1]) == (min(STAGE_02), max(STAGE_02))
    for name, angles, tlt in zip(("TS_01", "TS_02"), (YTILT_01, STAGE_02), table["rlnTiltAngleFile"]):
        assert Path(tlt) == out.parent / "tilt_angles" / f"{name}.tlt"
        assert read_tilt_angles(resolve_path(tlt, out, "rlnTiltAngleFile")) == pytest.approx(sorted(angles))
    assert set(table["rlnRelionTomogramsStar"]) == {str(star.absolute())}
    assert set(table["rlnRelionProjectDir"]) == {str(root.absolute())}
    # the wedge of every tomogram was checked (noise: no wedge to read, so "unclear", not refused)
    assert output.count("wedge ") >= 2 and "unclear" in output


def test_prepare_star_refuses_an_isonet_star_naming_no_file_and_a_relion4_set(tmp_path):
    """An IsoNet tomograms.star is copied (tests/test_plan.py); one whose tomogram is missing is refused."""
    isonet = write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["a.mrc"]}), tmp_path / "isonet.star")
    assert not is_relion5_star(isonet)
    code, output = _prepare(isonet, "-o", tmp_path / "out.star")
    assert code == 2 and "rlnMicrographName names a.mrc, which does not exist" in output
    assert not (tmp_path / "out.star").exists()
    relion4 = tmp_path / "relion4.star"
    relion4.write_text("data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoTiltSeriesName #2\nTS_01 ts.mrc\n")
    code, output = _prepare(relion4, "-o", tmp_path / "out.star")
    assert code == 2 and "RELION 4" in output and not (tmp_path / "out.star").exists()


def test_staged_star_names_files_beside_it(tmp_path):
    """Nextflow's task STAR (--named-in . --tilt-folder .): every file it names lies beside it once staged."""
    star = _project(tmp_path / "relion")
    task = tmp_path / "task"
    out = run_prepare_star(star, task / "tomograms.star", named_in=".", tilt_folder=".", wedge_check="off")
    table = read_tomogram_star(out)
    assert list(table["rlnMicrographName"]) == ["./rec_TS_01.mrc", "./rec_TS_02.mrc"]
    assert list(table["rlnTomoReconstructedTomogramHalf1"]) == ["./rec_TS_01_half1.mrc", "None"]
    assert list(table["rlnTiltAngleFile"]) == ["TS_01.tlt", "TS_02.tlt"]
    assert read_tilt_angles(task / "TS_01.tlt") == pytest.approx(sorted(YTILT_01))
    folder = tmp_path / "tomos"
    folder.mkdir()
    write_volume(folder / "TS_03_rec.mrc", _blob_volume((16, 16, 16), 0), 10.0)
    write_tilt_angles(folder / "TS_03.tlt", [-30.0, 0.0, 30.0])
    out = run_prepare_star(folder, task / "folder.star", named_in="s3://bucket/raw", tilt_folder="angles",
                           wedge_check="off")
    table = read_tomogram_star(out)
    assert list(table["rlnMicrographName"]) == ["s3://bucket/raw/TS_03_rec.mrc"]
    assert list(table["rlnTiltAngleFile"]) == ["angles/TS_03_rec.tlt"]  # a copy that travels with the STAR
    assert read_tilt_angles(task / "angles" / "TS_03_rec.tlt") == (-30.0, 0.0, 30.0)


# --- .tlt beside a tomogram, carried into subtomo.star ------------------------------------------


def test_folder_tlt_fills_the_wedge_and_extract_carries_it(tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    write_volume(folder / "TS_01_rec.mrc", _blob_volume((40, 48, 48), 0), 10.0)
    write_volume(folder / "TS_02.mrc", _blob_volume((40, 48, 48), 1), 10.0)
    angles = [-42.0, -39.0, -36.0, 30.0, 45.0, 57.0]
    tlt = write_tilt_angles(folder / "TS_01.tlt", angles)
    out = tmp_path / "run" / "tomograms.star"
    code, output = _prepare(folder, "-o", out, "--tilt-min", -60, "--tilt-max", 60, "--number-subtomos", 3)
    assert code == 0, output
    assert "differ from --tilt-min -60, --tilt-max 60" in output  # the user's range loses to the file, loudly
    table = read_tomogram_star(out)
    assert list(table["rlnTiltAngleFile"]) == [str(tlt.absolute()), "None"]
    assert (table["rlnTiltMin"].iloc[0], table["rlnTiltMax"].iloc[0]) == (-42.0, 57.0)
    assert (table["rlnTiltMin"].iloc[1], table["rlnTiltMax"].iloc[1]) == (-60.0, 60.0)

    subtomo_star = run_extract(out, subtomo_folder=tmp_path / "run" / "subtomo", subtomo_star=tmp_path / "sub.star",
                               cube_size=16, seed=1)
    subtomos = read_subtomo_star(subtomo_star)
    assert len(subtomos) == 6
    by_tomo = subtomos.groupby("rlnMicrographName")["rlnTiltAngleFile"].agg(set).to_dict()
    copy = tmp_path / "run" / "subtomo" / "TS_01_rec.tlt"  # the angles travel with the boxes
    assert by_tomo == {str(folder / "TS_01_rec.mrc"): {str(copy)}, str(folder / "TS_02.mrc"): {"None"}}
    tlt.unlink()  # refine reads the copy, wherever subtomo.star and its folder went
    first = subtomos[subtomos["rlnTiltAngleFile"] != "None"].iloc[0]
    assert read_tilt_angles(resolve_path(first["rlnTiltAngleFile"], subtomo_star, "rlnTiltAngleFile")) == tuple(angles)
    wedges = load_subtomos(subtomo_star).subtomo_wedges()
    assert {w.angles for w in wedges} == {tuple(angles), None}


def test_folder_without_tlt_has_no_angle_column_and_keeps_the_range(tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    write_volume(folder / "a.mrc", _blob_volume((16, 16, 16), 0), 10.0)
    star = run_prepare_star(folder, tmp_path / "t.star", tilt_min=-55.0, tilt_max=50.0, wedge_check="off")
    table = read_tomogram_star(star)
    assert "rlnTiltAngleFile" not in table.columns
    assert (table["rlnTiltMin"].iloc[0], table["rlnTiltMax"].iloc[0]) == (-55.0, 50.0)


# --- the wedge checked against the data ----------------------------------------------------------


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory):
    """A phantom simulated from -50..65° (asymmetric), alone in a folder."""
    folder = tmp_path_factory.mktemp("phantom")
    p = make_phantom((48, 48, 56), tilt_min=PHANTOM_RANGE[0], tilt_max=PHANTOM_RANGE[1], tilt_step=3.0, seed=0)
    write_volume(folder / "lamella.mrc", p.tomogram, 10.0)
    return folder


def _range(star: Path) -> tuple[float, float]:
    table = read_tomogram_star(star)
    return float(table["rlnTiltMin"].iloc[0]), float(table["rlnTiltMax"].iloc[0])


def test_wedge_check_agrees_with_the_simulated_range(phantom_folder, tmp_path):
    code, output = _prepare(phantom_folder, "-o", tmp_path / "t.star", "--tilt-min", -50, "--tilt-max", 65)
    assert code == 0, output
    assert "agrees" in output and _range(tmp_path / "t.star") == PHANTOM_RANGE


def test_wedge_check_refuses_a_mirrored_range_with_the_fix(phantom_folder, tmp_path):
    out = tmp_path / "t.star"
    code, output = _prepare(phantom_folder, "-o", out, "--tilt-min", -65, "--tilt-max", 50)
    assert code == 2
    line = output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "lamella.mrc" in line and "mirror" in line
    assert "-65..50" in line and "--tilt-min -50 --tilt-max 65" in line and "--wedge-check flip" in line
    assert not out.exists()


@pytest.mark.parametrize("mode, expected, words", [
    ("flip", PHANTOM_RANGE, ["mirrored", "wrote the mirrored wedge -50..65°"]),
    ("warn", (-65.0, 50.0), ["mirrored", "kept: --wedge-check warn"]),
    ("off", (-65.0, 50.0), []),
])
def test_wedge_check_flip_warn_off(phantom_folder, tmp_path, mode, expected, words):
    out = tmp_path / "t.star"
    code, output = _prepare(phantom_folder, "-o", out, "--tilt-min", -65, "--tilt-max", 50, "--wedge-check", mode)
    assert code == 0, output
    assert _range(out) == expected
    for word in words:
        assert word in output
    if mode == "off":
        assert "wedge -65..50" not in output  # not checked at all


def test_wedge_check_flips_mirrored_tlt_angles_into_a_file_of_its_own(phantom_folder, tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    os.symlink(phantom_folder / "lamella.mrc", folder / "lamella.mrc")
    given = [-a for a in tilt_angles(*PHANTOM_RANGE, 3.0)]  # the sign convention of another program
    users = write_tilt_angles(folder / "lamella.tlt", given)
    before = users.read_text()
    out = tmp_path / "run" / "t.star"
    code, output = _prepare(folder, "-o", out)
    assert code == 2 and "negate every angle in that file" in output and str(users) in output
    code, output = _prepare(folder, "-o", out, "--wedge-check", "flip")
    assert code == 0, output
    table = read_tomogram_star(out)
    written = Path(table["rlnTiltAngleFile"].iloc[0])
    assert written == out.parent / "tilt_angles" / "lamella.tlt"
    assert read_tilt_angles(written) == pytest.approx(sorted(-a for a in given))
    assert _range(out) == pytest.approx((min(-a for a in given), max(-a for a in given)))
    assert users.read_text() == before  # the user's file is never rewritten


# --- RELION 5 out --------------------------------------------------------------------------------

keras = pytest.importorskip("keras")


def _relion_back(path: Path, root: Path, *, relative: bool = True) -> pd.DataFrame:
    blocks = starfile.read(path, always_dict=True)
    assert list(blocks) == ["global"]
    table = blocks["global"]
    missing = [c for c in (*REQUIRED_GLOBAL, "rlnTomoReconstructedTomogram", "rlnTomoTomogramBinning")
               if c not in table.columns]
    assert not missing, missing
    for value in table["rlnTomoReconstructedTomogram"]:
        assert Path(value).is_absolute() != relative and (root / value).is_file()  # inside the project: relative
        assert read_header(root / value).shape == BIG
    return table


def test_predict_writes_a_relion5_star_of_the_corrected_tomograms(tmp_path, identity_model, monkeypatch):
    from isonet_steps.steps.predict import run_predict

    saved = dict(os.environ)  # predict sets device variables
    monkeypatch.setenv("ISONET_NO_PROGRESS", "1")
    root = tmp_path / "relion"
    star = _bigger_project(root)
    prepared = run_prepare_star(star, tmp_path / "run" / "tomograms.star", wedge_check="off")
    corrected = root / "IsoNet" / "job010" / "corrected"  # inside the project: RELION gets relative paths
    try:
        run_predict(prepared, identity_model, output_dir=corrected, cube_size=16, crop_size=32, gpus="cpu")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    table = _relion_back(corrected / "relion5_tomograms.star", root)
    assert list(table["rlnTomoName"].astype(str)) == ["TS_01", "TS_02"]
    assert list(table["rlnTomoReconstructedTomogram"]) == [
        f"IsoNet/job010/corrected/rec_{n}_corrected.mrc" for n in ("TS_01", "TS_02")]
    # the raw halves describe another volume: dropped; the tilt series stay the input's
    assert not any("Half" in c or "Proj2D" in c for c in table.columns)
    assert list(table["rlnTomoTiltSeriesStarFile"]) == [f"AlignTiltSeries/job004/tilt_series/{n}.star"
                                                        for n in ("TS_01", "TS_02")]
    # Nextflow publishes the corrected files elsewhere: named there (absolute), checked where they are now
    from isonet_steps.steps.relion5_out import write_relion5_star

    [nf] = write_relion5_star(read_tomogram_star(prepared), prepared, tmp_path / "nf", named_in="/published/tomos/")
    assert list(starfile.read(nf)["rlnTomoReconstructedTomogram"]) == [
        f"/published/tomos/rec_{n}_corrected.mrc" for n in ("TS_01", "TS_02")]
    # an IsoNet STAR (no RELION rows) writes none
    plain = tmp_path / "plain"
    write_star(read_star(prepared).drop(columns=["rlnRelionTomogramsStar", "rlnRelionProjectDir"]),
               tmp_path / "plain.star")
    try:
        run_predict(tmp_path / "plain.star", identity_model, output_dir=plain, cube_size=16, crop_size=32, gpus="cpu",
                    tomo_idx="1")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert (plain / "rec_TS_01_corrected.mrc").is_file() and not (plain / "relion5_tomograms.star").exists()


TINY = ["--number-subtomos", "12", "--cube-size", "16", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4",
        "--filter-base", "4", "--unet-depth", "2", "--convs-per-depth", "2", "--noise-level", "0.05",
        "--noise-start-iter", "2", "--predict-cube-size", "16", "--predict-crop-size", "32", "--gpus", "cpu"]


def test_isonet_run_on_a_relion5_star_with_halves(tmp_path):
    root = tmp_path / "relion"
    star = _bigger_project(root)
    out = tmp_path / "run"
    env = {**os.environ, "ISONET_NO_PROGRESS": "1"}
    run = subprocess.run([sys.executable, "-m", "isonet_steps", "run", "--input", str(star), "--outdir", str(out),
                          "--iterations", "1", "--halves", *TINY], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    prepared = read_tomogram_star(out / "tomograms.star")
    assert set(prepared["rlnRelionTomogramsStar"]) == {str(star)}
    assert (out / "tomograms_deconv.star").is_file()  # RELION's CTF gave a defocus: deconv ran
    subtomos = read_subtomo_star(out / "subtomo.star")
    assert set(subtomos["rlnTiltAngleFile"]) == {str(out / "subtomo" / f"rec_{n}.tlt") for n in ("TS_01", "TS_02")}
    for n in ("TS_01", "TS_02"):  # extract's copies of prepare's angle files, beside the boxes
        assert (out / "subtomo" / f"rec_{n}.tlt").read_bytes() == (out / "tilt_angles" / f"{n}.tlt").read_bytes()
    table = _relion_back(out / "corrected" / "relion5_tomograms.star", root, relative=False)
    names = [Path(v).name for v in table["rlnTomoReconstructedTomogram"]]
    assert names == ["rec_TS_01_corrected.mrc", "rec_TS_02_corrected.mrc"]  # the mean of the two half networks
    assert [Path(v).name for v in table["rlnTomoReconstructedTomogramHalf1"]] == [
        "rec_TS_01_half1_corrected.mrc", "rec_TS_02_half1_corrected.mrc"]


#: An IMOD series with a gap (no views between -20° and +20°): the gap is missing wedge too.
GAP_SERIES = [float(a) for a in (*range(-60, -19, 4), *range(24, 61, 4))]


def imod_folder(folder: Path) -> Path:
    """A folder as IMOD leaves it: TS_01.mrc with its TS_01.tlt beside it."""
    write_volume(folder / "TS_01.mrc", _blob_volume((48, 64, 64), 3), 10.0)
    write_tilt_angles(folder / "TS_01.tlt", GAP_SERIES)
    return folder


def test_isonet_run_on_an_imod_folder_trains_with_its_recorded_angles(tmp_path):
    folder = imod_folder(tmp_path / "imod")
    out = tmp_path / "run"
    env = {**os.environ, "ISONET_NO_PROGRESS": "1"}
    run = subprocess.run([sys.executable, "-m", "isonet_steps", "run", "--input", str(folder), "--outdir", str(out),
                          "--iterations", "1", *TINY], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    subtomos = read_subtomo_star(out / "subtomo.star")
    assert set(subtomos["rlnTiltAngleFile"]) == {str(out / "subtomo" / "TS_01.tlt")}
    state = json.loads((out / "refine" / "refine_state.json").read_text())
    assert {tuple(a) for a in state["data"]["angles"]} == {tuple(GAP_SERIES)}  # trained on the angles, gap included
    assert (out / "report.html").exists()
