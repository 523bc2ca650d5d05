"""Bad input to prepare-star, prepare-subtomo-star, extract and make-phantom: refused cleanly.

Every case: non-zero exit, exactly one ``Error:`` line naming the file or option and the problem,
no traceback, and no output written.
"""

from __future__ import annotations

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import check_bad_input
from isonet_steps.io.mrc import write_volume


@pytest.fixture
def blocker(tmp_path):
    """A regular file: paths below it cannot be created, even by root."""
    path = tmp_path / "file.txt"
    path.write_text("a file, not a folder")
    return path


def _star(tmp_path, **columns) -> str:
    path = tmp_path / "in.star"
    starfile.write(pd.DataFrame(columns), path)
    return str(path)


def _tomo_row(phantom, **extra):
    row = {"rlnIndex": [1], "rlnMicrographName": [str(phantom.tomo)], "rlnPixelSize": [10.0], "rlnNumberSubtomo": [4]}
    row.update({k: [v] for k, v in extra.items()})
    return row


def _extract(run_isonet, tmp_path, star, *extra):
    out = [tmp_path / "subtomo", tmp_path / "subtomo.star"]
    result = run_isonet("extract", star, "--subtomo-folder", out[0], "--subtomo-star", out[1], "--cube-size", "16",
                        "--crop-size", "24", *extra)
    return result, out


# ---- prepare-star -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["{tmp}/missing"], ["missing", "not found"]),
        (["{tmp}/empty"], ["empty", "no tomograms"]),
        (["{tomos}", "--pixel-size", "0"], ["--pixel-size", "0"]),
        (["{tomos}", "--pixel-size", "-3"], ["--pixel-size", "-3"]),
        (["{tomos}", "--tilt-min", "50", "--tilt-max", "-50"], ["--tilt-min", "50"]),
        (["{tomos}", "--tilt-min", "-95"], ["-95", "90"]),
        (["{tomos}", "--bogus", "1"], ["--bogus"]),
        (["{tomos}", "--number-subtomos", "many"], ["--number-subtomos", "many"]),
    ],
)
def test_prepare_star(args, words, phantom_small, run_isonet, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    out = tmp_path / "t.star"
    args = [a.format(tmp=tmp_path, tomos=phantom_small.tomo_dir) for a in args]
    check_bad_input(run_isonet("prepare-star", *args, "-o", out), *words, not_written=[out])


def test_prepare_star_output_not_writable(phantom_small, run_isonet, blocker):
    out = blocker / "t.star"
    check_bad_input(run_isonet("prepare-star", phantom_small.tomo_dir, "-o", out), "file.txt", not_written=[out])


# ---- prepare-subtomo-star ---------------------------------------------------------------------


def _cubes(folder, *sizes):
    folder.mkdir(exist_ok=True)
    for i, n in enumerate(sizes):
        write_volume(folder / f"{chr(97 + i)}.mrc", np.random.default_rng(i).normal(size=(n, n, n)), 10.0)


def test_subtomo_missing_folder(run_isonet, tmp_path):
    out = tmp_path / "s.star"
    check_bad_input(run_isonet("prepare-subtomo-star", tmp_path / "nowhere", "-o", out), "nowhere", "not found",
                    not_written=[out])


def test_subtomo_folder_without_mrc(run_isonet, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("hello")
    out = tmp_path / "s.star"
    check_bad_input(run_isonet("prepare-subtomo-star", tmp_path / "sub", "-o", out), "sub", "no readable cubic",
                    not_written=[out])


def test_subtomo_sizes_differ(run_isonet, tmp_path):
    _cubes(tmp_path / "sub", 32, 40)
    out = tmp_path / "s.star"
    check_bad_input(run_isonet("prepare-subtomo-star", tmp_path / "sub", "-o", out), "differ", "a.mrc", "b.mrc",
                    not_written=[out])


def test_subtomo_only_truncated(run_isonet, tmp_path):
    _cubes(tmp_path / "sub", 32)
    good = tmp_path / "sub" / "a.mrc"
    (tmp_path / "sub" / "cut.mrc").write_bytes(good.read_bytes()[:3000])
    good.unlink()
    out = tmp_path / "s.star"
    check_bad_input(run_isonet("prepare-subtomo-star", tmp_path / "sub", "-o", out), "cut.mrc", "truncated",
                    not_written=[out])


def test_subtomo_only_2d(run_isonet, tmp_path):
    (tmp_path / "sub").mkdir()
    with mrcfile.new(tmp_path / "sub" / "image.mrc") as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32))
    out = tmp_path / "s.star"
    check_bad_input(run_isonet("prepare-subtomo-star", tmp_path / "sub", "-o", out), "image.mrc", "3D",
                    not_written=[out])


@pytest.mark.parametrize(
    "args, words",
    [
        (["--cube-size", "20"], ["--cube-size", "20", "multiple of 8"]),
        (["--cube-size", "64"], ["--cube-size", "64", "larger"]),
        (["--pixel-size", "0"], ["--pixel-size", "0"]),
        (["--tilt-max", "91"], ["91", "90"]),
        (["--tilt-min", "30", "--tilt-max", "20"], ["--tilt-min", "30"]),
    ],
)
def test_subtomo_bad_options(args, words, run_isonet, tmp_path):
    _cubes(tmp_path / "sub", 32)
    out = tmp_path / "s.star"
    check_bad_input(run_isonet("prepare-subtomo-star", tmp_path / "sub", "-o", out, *args), *words, not_written=[out])


def test_subtomo_output_not_writable(run_isonet, tmp_path, blocker):
    _cubes(tmp_path / "sub", 32)
    out = blocker / "s.star"
    check_bad_input(run_isonet("prepare-subtomo-star", tmp_path / "sub", "-o", out), "file.txt", not_written=[out])


# ---- extract ----------------------------------------------------------------------------------


def test_extract_missing_star(run_isonet, tmp_path):
    result, out = _extract(run_isonet, tmp_path, tmp_path / "nope.star")
    check_bad_input(result, "nope.star", "not found", not_written=out)


def test_extract_empty_star(run_isonet, tmp_path):
    star = tmp_path / "empty.star"
    star.write_text("data_\n\nloop_\n_rlnMicrographName #1\n_rlnPixelSize #2\n")
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "empty.star", "no rows", not_written=out)


def test_extract_star_without_micrograph_column(phantom_small, run_isonet, tmp_path):
    star = _star(tmp_path, rlnIndex=[1], rlnImageName=[str(phantom_small.tomo)], rlnPixelSize=[10.0])
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "in.star", "rlnMicrographName", not_written=out)


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"rlnPixelSize": "abc"}, ["rlnPixelSize", "abc"]),
        ({"rlnNumberSubtomo": "lots"}, ["rlnNumberSubtomo", "lots"]),
        ({"rlnPixelSize": 0.0}, ["rlnPixelSize", "0"]),
        ({"rlnPixelSize": -2.0}, ["rlnPixelSize", "-2"]),
        ({"rlnTiltMin": 40.0, "rlnTiltMax": -40.0}, ["rlnTiltMin", "40"]),
        ({"rlnTiltMin": -100.0, "rlnTiltMax": 60.0}, ["-100", "90"]),
    ],
)
def test_extract_bad_star_values(extra, words, phantom_small, run_isonet, tmp_path):
    star = _star(tmp_path, **_tomo_row(phantom_small, **extra))
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "in.star", *words, not_written=out)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--cube-size", "64"], ["tomo.mrc", "48x96x96", "--cube-size 64"]),  # crop 80 > Z 48
        (["--cube-size", "30"], ["--cube-size", "30", "multiple of 8"]),
        (["--cube-size", "32", "--crop-size", "24"], ["--crop-size", "24", "smaller"]),
        (["--tomo-idx", "one,two"], ["--tomo-idx", "one,two"]),
        (["--tomo-idx", "5"], ["--tomo-idx", "5"]),
        (["--seed", "-1"], ["--seed", "-1"]),
        (["--bogus"], ["--bogus"]),
    ],
)
def test_extract_bad_options(args, words, tomo_star, run_isonet, tmp_path):
    out = [tmp_path / "subtomo", tmp_path / "subtomo.star"]
    result = run_isonet("extract", tomo_star, "--subtomo-folder", out[0], "--subtomo-star", out[1], *args)
    check_bad_input(result, *words, not_written=out)


def _mask_star(tmp_path, phantom, mask_array, number=4):
    mask = write_volume(tmp_path / "m.mrc", mask_array, 10.0, dtype=np.int8)
    return _star(tmp_path, **_tomo_row(phantom, rlnMaskName=str(mask), rlnNumberSubtomo=number))


def test_extract_empty_mask(phantom_small, run_isonet, tmp_path):
    star = _mask_star(tmp_path, phantom_small, np.zeros((48, 96, 96), np.int8))
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "m.mrc", "mask is empty", not_written=out)


def test_extract_more_subtomos_than_mask_allows(phantom_small, run_isonet, tmp_path):
    mask = np.zeros((48, 96, 96), np.int8)
    mask[24, 40:43, 50] = 1
    star = _mask_star(tmp_path, phantom_small, mask, number=4)
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "m.mrc", "more subtomograms (4) than the mask allows (3", "fewer", "looser mask",
                    not_written=out)


def test_extract_mask_only_at_the_edges(phantom_small, run_isonet, tmp_path):
    mask = np.zeros((48, 96, 96), np.int8)
    mask[:3] = 1
    star = _mask_star(tmp_path, phantom_small, mask)
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "m.mrc", "no voxel", "edges", not_written=out)


def test_extract_mask_shape_mismatch(phantom_small, run_isonet, tmp_path):
    star = _mask_star(tmp_path, phantom_small, np.ones((48, 96, 80), np.int8))
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "m.mrc", "shape", "(48, 96, 80)", not_written=out)


def test_extract_mask_missing(phantom_small, run_isonet, tmp_path):
    star = _star(tmp_path, **_tomo_row(phantom_small, rlnMaskName=str(tmp_path / "gone_mask.mrc")))
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "rlnMaskName", "gone_mask.mrc", not_written=out)


def test_extract_tomogram_missing(run_isonet, tmp_path):
    star = _star(tmp_path, rlnMicrographName=[str(tmp_path / "lost.mrc")], rlnPixelSize=[10.0])
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "lost.mrc", "does not exist", not_written=out)


def test_extract_truncated_tomogram(phantom_small, run_isonet, tmp_path):
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(phantom_small.tomo.read_bytes()[:200_000])
    star = _star(tmp_path, rlnMicrographName=[str(cut)], rlnPixelSize=[10.0], rlnNumberSubtomo=[2])
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "cut.mrc", "truncated", not_written=out)


def test_extract_2d_tomogram(run_isonet, tmp_path):
    flat = tmp_path / "flat.mrc"
    with mrcfile.new(flat) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32))
    star = _star(tmp_path, rlnMicrographName=[str(flat)], rlnPixelSize=[10.0], rlnNumberSubtomo=[2])
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "flat.mrc", "3D", not_written=out)


def test_extract_same_file_names(phantom_small, run_isonet, tmp_path):
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / "tomo.mrc"
    twin.write_bytes(phantom_small.tomo.read_bytes())
    star = _star(tmp_path, rlnIndex=[1, 2], rlnMicrographName=[str(phantom_small.tomo), str(twin)],
                 rlnPixelSize=[10.0, 10.0], rlnNumberSubtomo=[2, 2])
    result, out = _extract(run_isonet, tmp_path, star)
    check_bad_input(result, "'tomo'", "rename", not_written=out)


@pytest.mark.parametrize("which", ["folder", "star"])
def test_extract_output_not_writable(which, tomo_star, run_isonet, tmp_path, blocker):
    folder = blocker / "subtomo" if which == "folder" else tmp_path / "subtomo"
    star_out = blocker / "subtomo.star" if which == "star" else tmp_path / "subtomo.star"
    result = run_isonet("extract", tomo_star, "--subtomo-folder", folder, "--subtomo-star", star_out,
                        "--cube-size", "16", "--crop-size", "24")
    check_bad_input(result, "file.txt", not_written=[folder, star_out, tmp_path / "subtomo"])


# ---- make-phantom -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["--shape", "64,abc,160"], ["--shape", "64,abc,160"]),
        (["--shape", "64,160"], ["--shape", "64,160"]),
        (["--shape", "8,16,16"], ["--shape", "8,16,16", "too small"]),
        (["--tilt-min", "60", "--tilt-max", "-60"], ["--tilt-min", "60"]),
        (["--tilt-max", "120"], ["120", "90"]),
        (["--tilt-step", "0"], ["--tilt-step", "0"]),
        (["--snr", "0"], ["--snr", "0"]),
        (["--pixel-size", "-1"], ["--pixel-size", "-1"]),
        (["--seed", "-4"], ["--seed", "-4"]),
        (["--snr", "high"], ["--snr", "high"]),
        (["--bogus"], ["--bogus"]),
    ],
)
def test_make_phantom_bad_options(args, words, run_isonet, tmp_path):
    out = tmp_path / "ph"
    check_bad_input(run_isonet("make-phantom", out, "--shape", "32,48,48", *args), *words, not_written=[out])


def test_make_phantom_output_not_writable(run_isonet, blocker):
    out = blocker / "ph"
    check_bad_input(run_isonet("make-phantom", out, "--shape", "32,48,48"), "file.txt", not_written=[out])
