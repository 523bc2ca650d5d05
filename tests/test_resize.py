"""Rescaling tomograms to another voxel size: shapes, values, voxel size and STAR."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from _data_steps import read_star, write_star, write_tomo
from conftest import check_ok, invoke
from isonet_steps.core.resample import rescale, rescaled_shape
from isonet_steps.io.errors import InputError


def _smooth_field(shape, scale):
    """A smooth function of physical position (voxel index × scale), sampled on ``shape``."""
    z, y, x = np.meshgrid(*[np.arange(n) * scale for n in shape], indexing="ij")
    return (np.sin(z / 9.0) + np.cos(y / 13.0) * np.sin(x / 11.0)).astype(np.float32)


@pytest.mark.parametrize("shape, pixel, out, expected", [
    ((30, 41, 64), 10.0, 20.0, (15, 20, 32)),
    ((20, 24, 28), 15.0, 10.0, (30, 36, 42)),
    ((25, 33, 40), 10.0, 15.0, (17, 22, 27)),
])
def test_shapes(shape, pixel, out, expected):
    assert rescaled_shape(shape, pixel / out) == expected
    assert rescale(np.zeros(shape, np.float32), pixel, out).shape == expected


def test_values_follow_the_physical_positions():
    """Sampling a smooth field at 5 Å and rescaling to 10 Å matches sampling it at 10 Å."""
    fine = _smooth_field((40, 48, 56), 1.0)
    coarse = rescale(fine, 5.0, 10.0)
    # ndimage.zoom maps the corners onto each other: output voxel i sits at i·(n-1)/(m-1) input voxels
    axes = [np.arange(m) * (n - 1) / (m - 1) for n, m in zip(fine.shape, coarse.shape)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    expected = np.sin(z / 9.0) + np.cos(y / 13.0) * np.sin(x / 11.0)
    assert np.corrcoef(coarse.ravel(), expected.ravel())[0, 1] > 0.995
    assert coarse.dtype == np.float32


def test_too_small_or_bad_sizes():
    with pytest.raises(InputError, match="too small"):
        rescaled_shape((4, 40, 40), 0.1)
    with pytest.raises(InputError, match="--pixel-size-out"):
        rescale(np.zeros((8, 8, 8), np.float32), 10.0, 0.0)


def test_cli_writes_volumes_and_star(tmp_path):
    field = _smooth_field((30, 40, 50), 1.0)
    t1 = write_tomo(tmp_path / "tomos" / "a.rec.mrc", field, 10.0)
    t2 = write_tomo(tmp_path / "tomos" / "b.mrc", field[:20], 7.5)
    star = write_star(tmp_path / "tomograms.star", [
        {"rlnMicrographName": t1, "rlnPixelSize": 10.0, "rlnMaskName": "mask/a_mask.mrc"},
        {"rlnMicrographName": t2, "rlnPixelSize": 7.5},
    ])
    check_ok(invoke(["resize", star, "--apix", "20"], cwd=tmp_path))
    a = tmp_path / "tomograms_resized" / "a.rec.mrc"
    b = tmp_path / "tomograms_resized" / "b.mrc"
    with mrcfile.open(a) as m:
        assert m.data.shape == (15, 20, 25) and m.voxel_size.x == pytest.approx(20.0)
    with mrcfile.open(b) as m:
        assert m.data.shape == (8, 15, 19) and m.voxel_size.x == pytest.approx(20.0)
    df = read_star(tmp_path / "tomograms_resized.star")
    assert df["rlnMicrographName"].tolist() == ["tomograms_resized/a.rec.mrc", "tomograms_resized/b.mrc"]
    assert df["rlnPixelSize"].tolist() == [20.0, 20.0]
    assert df["rlnMaskName"].tolist() == ["None", "None"]  # old-size mask no longer fits
    assert read_star(star)["rlnPixelSize"].tolist() == [10.0, 7.5]  # input STAR untouched


def test_cli_underscore_spellings(tmp_path):
    t1 = write_tomo(tmp_path / "t.mrc", _smooth_field((16, 20, 24), 1.0), 10.0)
    star = write_star(tmp_path / "tomograms.star", [{"rlnMicrographName": t1}])
    check_ok(invoke(["resize", star, "--pixel_size_out", "5", "--out_folder", "big", "--output_star", "big.star"],
                    cwd=tmp_path))
    assert mrcfile.read(tmp_path / "big" / "t.mrc").shape == (32, 40, 48)
    assert read_star(tmp_path / "big.star")["rlnPixelSize"].tolist() == [5.0]
