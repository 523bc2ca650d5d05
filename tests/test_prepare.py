"""prepare-star (names with several dots) and prepare-subtomo-star (external subtomograms)."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from conftest import check_ok
from isonet_steps.io.mrc import write_volume
from isonet_steps.io.star import read_subtomo_star, read_tomogram_star
from isonet_steps.io.tomostar import default_cube_size


def _cube(path, n, voxel=10.0, seed=0):
    data = np.random.default_rng(seed).normal(size=(n, n, n)).astype(np.float32)
    write_volume(path, data, voxel)
    return data


def test_prepare_star_keeps_dotted_names(phantom_small, run_isonet, tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    for name in ("cell.sirt.bin4.mrc", "b_tomo.rec"):
        (folder / name).write_bytes(phantom_small.tomo.read_bytes())
    (folder / "notes.txt").write_text("not a tomogram")
    (folder / "cell.sirt.bin4.mrc.bak").write_text("not a tomogram")
    star = tmp_path / "tomograms.star"
    check_ok(run_isonet("prepare-star", folder, "-o", star, "--pixel-size", "10", "--number-subtomos", "6",
                        "--tilt-min", "-50", "--tilt-max", "55"))
    df = read_tomogram_star(star)
    assert [p.split("/")[-1] for p in df["rlnMicrographName"]] == ["b_tomo.rec", "cell.sirt.bin4.mrc"]
    assert list(df["rlnIndex"]) == [1, 2]
    assert set(df["rlnTiltMin"]) == {-50.0} and set(df["rlnTiltMax"]) == {55.0}
    # and extract names subtomograms after the whole stem
    check_ok(run_isonet("extract", star, "--subtomo-folder", tmp_path / "sub", "--subtomo-star", tmp_path / "s.star",
                        "--cube-size", "16", "--crop-size", "24", "--tomo-idx", "2"))
    sub = read_subtomo_star(tmp_path / "s.star")
    assert [p.split("/")[-1] for p in sub["rlnImageName"]] == [f"cell.sirt.bin4_{j:06d}.mrc" for j in range(6)]
    assert set(sub["rlnTiltMin"]) == {-50.0}


def test_prepare_star_names_the_tomograms_where_they_live(phantom_small, run_isonet, tmp_path):
    """--named-in: a STAR read from a staged copy names the files in their own folder (or URI)."""
    staged = tmp_path / "tomograms"
    staged.mkdir()
    (staged / "a.mrc").write_bytes(phantom_small.tomo.read_bytes())
    star = tmp_path / "published.star"
    check_ok(run_isonet("prepare-star", staged, "-o", star, "--named-in", "s3://bucket/raw/"))
    assert list(read_tomogram_star(star)["rlnMicrographName"]) == ["s3://bucket/raw/a.mrc"]
    check_ok(run_isonet("prepare-star", staged, "-o", star))
    assert list(read_tomogram_star(star)["rlnMicrographName"]) == [str(staged / "a.mrc")]


def test_default_cube_size_rule():
    assert default_cube_size(96) == 64
    assert default_cube_size(80) == 48
    assert default_cube_size(64) == 32


def test_prepare_subtomo_star(run_isonet, tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    for i in range(3):
        _cube(folder / f"s.{i}.mrc", 48, seed=i)
    write_volume(folder / "flat.mrc", np.ones((8, 48, 48), np.float32) * np.arange(48), 10.0)  # not cubic
    good = (folder / "s.0.mrc").read_bytes()
    (folder / "zz_truncated.mrc").write_bytes(good[: len(good) // 2])
    (folder / "readme.txt").write_text("hello")
    out = tmp_path / "subtomo.star"
    result = check_ok(run_isonet("prepare-subtomo-star", folder, "-o", out, "--pixel-size", "8.5",
                                 "--tilt-min", "-45", "--tilt-max", "60"))
    assert "zz_truncated.mrc" in result.stderr and "flat.mrc" in result.stderr  # skipped with a warning
    df = read_subtomo_star(out)
    assert [p.split("/")[-1] for p in df["rlnImageName"]] == ["s.0.mrc", "s.1.mrc", "s.2.mrc"]
    assert list(df["rlnSubtomoIndex"]) == [1, 2, 3]
    assert set(df["rlnCropSize"]) == {48} and set(df["rlnCubeSize"]) == {default_cube_size(48)} == {32}
    assert set(df["rlnPixelSize"]) == {8.5}
    assert set(df["rlnTiltMin"]) == {-45.0} and set(df["rlnTiltMax"]) == {60.0}
    for name in df["rlnImageName"]:
        with mrcfile.open(name) as mrc:
            assert mrc.data.shape == (48, 48, 48)


def test_prepare_subtomo_star_explicit_cube(run_isonet, tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    _cube(folder / "a.mrc", 40)
    check_ok(run_isonet("prepare-subtomo-star", folder, "-o", tmp_path / "s.star", "--cube_size", "24"))
    assert set(read_subtomo_star(tmp_path / "s.star")["rlnCubeSize"]) == {24}


def test_extract_output_round_trips(masked_tomo_star, run_isonet, tmp_path):
    check_ok(run_isonet("extract", masked_tomo_star, "--subtomo-folder", tmp_path / "sub", "--subtomo-star",
                        tmp_path / "e.star", "--cube-size", "16", "--crop-size", "24"))
    check_ok(run_isonet("prepare-subtomo-star", tmp_path / "sub", "-o", tmp_path / "p.star", "--cube-size", "16"))
    e, p = read_subtomo_star(tmp_path / "e.star"), read_subtomo_star(tmp_path / "p.star")
    assert len(e) == len(p) == 8
    assert sorted(e["rlnImageName"].str.split("/").str[-1]) == list(p["rlnImageName"].str.split("/").str[-1])
    assert set(p["rlnCropSize"]) == {24}


@pytest.mark.parametrize("n", [24, 33])
def test_small_subtomograms_get_a_valid_cube(run_isonet, tmp_path, n):
    folder = tmp_path / "sub"
    folder.mkdir()
    _cube(folder / "a.mrc", n)
    check_ok(run_isonet("prepare-subtomo-star", folder, "-o", tmp_path / "s.star"))
    cube = int(read_subtomo_star(tmp_path / "s.star")["rlnCubeSize"][0])
    assert cube % 8 == 0 and 8 <= cube <= n
