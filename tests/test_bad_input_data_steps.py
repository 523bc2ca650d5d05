"""Bad input to deconv, make-mask and resize: one clear line, non-zero exit, nothing written."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from _data_steps import write_star, write_tomo
from conftest import check_bad_input, invoke

SHAPE = (16, 32, 32)
OUTPUT_OPTION = {"deconv": "--deconv-folder", "make-mask": "--mask-folder", "resize": "--out-folder"}


@pytest.fixture
def case(tmp_path):
    """A folder with one good tomogram and its STAR; helpers to make bad variants."""

    class Case:
        root = tmp_path
        good = write_tomo(tmp_path / "tomos" / "good.mrc",
                          np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32))

        def star(self, name="tomograms.star", **row) -> Path:
            row.setdefault("rlnMicrographName", self.good)
            return write_star(tmp_path / name, [row])

        def run(self, *args):
            return invoke(list(args), cwd=tmp_path)

        def outputs(self):
            """Where the three commands would write by default, plus their STAR outputs."""
            return [tmp_path / "deconv", tmp_path / "mask", tmp_path / "tomograms_resized",
                    tmp_path / "tomograms_resized.star", tmp_path / "out"]

    return Case()


def _star_unchanged(star: Path, before: str) -> None:
    assert star.read_text() == before, "the STAR file was rewritten"


@pytest.mark.parametrize("command", ["deconv", "make-mask", "resize"])
def test_missing_star(case, command):
    result = case.run(command, "nowhere/tomograms.star")
    check_bad_input(result, "nowhere/tomograms.star", "not found", not_written=case.outputs())


@pytest.mark.parametrize("command", ["deconv", "make-mask", "resize"])
def test_missing_tomogram_named_by_star(case, command):
    star = case.star(rlnMicrographName="tomos/gone.rec.mrc")
    before = star.read_text()
    check_bad_input(case.run(command, star), "gone.rec.mrc", "does not exist", not_written=case.outputs())
    _star_unchanged(star, before)


@pytest.mark.parametrize("args", [["deconv"], ["deconv", "--chunk-size", "32"], ["make-mask"], ["resize"]])
def test_truncated_mrc(case, args):
    path = write_tomo(case.root / "tomos" / "cut.mrc", np.ones(SHAPE, np.float32))
    os.truncate(path, path.stat().st_size - 4096)
    star = case.star(rlnMicrographName=path)
    check_bad_input(case.run(args[0], star, *args[1:]), "cut.mrc", "truncated", not_written=case.outputs())


@pytest.mark.parametrize("command", ["deconv", "make-mask", "resize"])
def test_2d_mrc(case, command):
    path = case.root / "tomos" / "image.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((32, 32), np.float32))
    star = case.star(rlnMicrographName=path)
    check_bad_input(case.run(command, star), "image.mrc", "3D", not_written=case.outputs())


@pytest.mark.parametrize("args", [["deconv"], ["deconv", "--chunk-size", "32"], ["make-mask"], ["resize"]])
def test_nan_voxels(case, args):
    data = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    data[5, 6, 7] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        path = write_tomo(case.root / "tomos" / "holes.mrc", data)
    star = case.star(rlnMicrographName=path)
    check_bad_input(case.run(args[0], star, *args[1:]), "holes.mrc", "NaN", not_written=case.outputs())


@pytest.mark.parametrize("args", [["deconv"], ["deconv", "--chunk-size", "32"], ["make-mask"]])
def test_constant_volume(case, args):
    path = write_tomo(case.root / "tomos" / "flat.mrc", np.full(SHAPE, 3.0, np.float32))
    star = case.star(rlnMicrographName=path)
    check_bad_input(case.run(args[0], star, *args[1:]), "flat.mrc", "constant", not_written=case.outputs())


@pytest.mark.parametrize("command", ["deconv", "make-mask", "resize"])
def test_pixel_size_zero_in_star(case, command):
    star = case.star(rlnPixelSize=0.0)
    check_bad_input(case.run(command, star), "rlnPixelSize", "> 0", not_written=case.outputs())


@pytest.mark.parametrize("args, option", [
    (["--density-percentage", "150"], "--density-percentage"),
    (["--std-percentage", "-5"], "--std-percentage"),
    (["--z-crop", "0.5"], "--z-crop"),
    (["--z-crop", "-0.1"], "--z-crop"),
    (["--patch-size", "0"], "--patch-size"),
])
def test_mask_settings_out_of_range(case, args, option):
    check_bad_input(case.run("make-mask", case.star(), *args), option, not_written=case.outputs())


def test_mask_percentage_out_of_range_in_star(case):
    star = case.star(rlnMaskStdPercentage=120.0)
    check_bad_input(case.run("make-mask", star), "rlnMaskStdPercentage", "0..100", not_written=case.outputs())


@pytest.mark.parametrize("name, content, words", [
    ("tomos/gone.mod", None, ["rlnMaskBoundary", "gone.mod", "does not exist", "set it to None"]),
    ("tomos/boundary.txt", b"10 10 0\n", ["rlnMaskBoundary", "boundary.txt", ".mod", "set it to None"]),
    ("tomos/text.mod", b"10 10 0\n20 10 0\n20 20 0\n" * 20, ["text.mod", "not an IMOD binary model"]),
    ("tomos/cut.mod", "truncate", ["cut.mod", "truncated"]),
    ("tomos/two.mod", [[1, 1, 0], [9, 9, 1]], ["two.mod", "2 polygon point", "at least 3"]),
])
def test_mask_boundary_bad(case, name, content, words):
    from isonet_steps.io.imod import write_imod_model

    path = case.root / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncate":
        raw = write_imod_model(path, [[[1, 1, 0], [9, 1, 0], [9, 9, 0]]], image_size=(32, 32, 16)).read_bytes()
        path.write_bytes(raw[:-20])
    elif content is not None:
        write_imod_model(path, [content], image_size=(32, 32, 16))
    star = case.star(rlnMaskBoundary=name)
    before = star.read_text()
    check_bad_input(case.run("make-mask", star), *words, not_written=case.outputs())
    _star_unchanged(star, before)


@pytest.mark.parametrize("args, option", [
    (["--chunk-size", "8"], "--chunk-size"),
    (["--chunk-size", "64", "--overlap-rate", "1.5"], "--overlap-rate"),
    (["--voltage", "0"], "--voltage"),
    (["--highpassnyquist", "3"], "--highpassnyquist"),
    (["--ncpu", "0"], "--ncpu"),
])
def test_deconv_settings_out_of_range(case, args, option):
    star = case.star()
    before = star.read_text()
    check_bad_input(case.run("deconv", star, *args), option, not_written=case.outputs())
    _star_unchanged(star, before)


def test_negative_defocus(case):
    check_bad_input(case.run("deconv", case.star(rlnDefocus=-5000.0)), "rlnDefocus", "negative",
                    not_written=case.outputs())


@pytest.mark.parametrize("value", ["0", "-15", "abc"])
def test_resize_bad_pixel_size_out(case, value):
    result = case.run("resize", case.star(), "--pixel-size-out", value)
    check_bad_input(result, "pixel-size-out", not_written=case.outputs())


@pytest.mark.parametrize("command", ["deconv", "make-mask", "resize"])
def test_unknown_option(case, command):
    result = case.run(command, case.star(), "--cube-sizes", "64")
    check_bad_input(result, "--cube-sizes", not_written=case.outputs())


@pytest.mark.parametrize("command", ["deconv", "make-mask", "resize"])
def test_output_folder_under_a_file(case, command):
    (case.root / "somefile").write_text("not a folder")
    star = case.star()
    before = star.read_text()
    result = case.run(command, star, OUTPUT_OPTION[command], "somefile/out")
    check_bad_input(result, "somefile", not_written=case.outputs())
    _star_unchanged(star, before)


@pytest.mark.parametrize("command", ["deconv", "make-mask", "resize"])
def test_output_star_under_a_file(case, command):
    (case.root / "somefile").write_text("not a folder")
    result = case.run(command, case.star(), "--output-star", "somefile/new.star")
    check_bad_input(result, "somefile", not_written=case.outputs())


@pytest.mark.parametrize("command", ["deconv", "make-mask"])
@pytest.mark.parametrize("value", ["abc", "1,x", "7"])
def test_bad_tomo_idx(case, command, value):
    check_bad_input(case.run(command, case.star(), "--tomo-idx", value), "--tomo-idx", not_written=case.outputs())
