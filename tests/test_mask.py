"""Sample masks: each criterion, the binning round trip, and coverage of real structures."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
from scipy import ndimage

from _data_steps import blobs_and_sheets, read_star, write_star, write_tomo
from conftest import check_ok, invoke
from isonet_steps.core.mask import bin2, density_criterion, local_std, make_mask, upsample_nearest
from isonet_steps.io.errors import InputError


def test_bin2_shapes_and_pair_means():
    rng = np.random.default_rng(0)
    for shape in [(8, 10, 12), (9, 11, 13), (3, 2, 5)]:
        assert bin2(rng.standard_normal(shape)).shape == tuple(n // 2 for n in shape)
    ramp = np.broadcast_to(np.arange(16, dtype=np.float32)[None, None, :], (8, 8, 16))
    binned = bin2(ramp)
    # a linear ramp survives the smoothing; the binned voxels sit at the centres of voxel pairs
    np.testing.assert_allclose(binned[2, 2, 1:-1], np.arange(1, 7) * 2 + 0.5, atol=1e-4)


def test_bin2_suppresses_aliasing():
    """A pattern at the full-resolution Nyquist would alias to a strong pattern without smoothing."""
    z = np.arange(16)
    checker = ((-1.0) ** (z[:, None, None] + z[None, :, None] + z[None, None, :])).astype(np.float32)
    assert np.abs(bin2(checker)).max() < 0.05


def test_upsample_nearest_fills_odd_sizes():
    small = np.arange(2 * 3 * 4, dtype=np.int8).reshape(2, 3, 4)
    big = upsample_nearest(small, (5, 7, 9))
    assert big.shape == (5, 7, 9)
    np.testing.assert_array_equal(big[-1], big[-2])  # last plane copies its neighbour, not zero
    assert set(np.unique(big)) == set(np.unique(small))
    np.testing.assert_array_equal(upsample_nearest(small, (4, 6, 8))[::2, ::2, ::2], small)


def test_local_std_matches_brute_force_inside_and_at_edges():
    x = np.random.default_rng(1).standard_normal((10, 11, 12)) + 100.0  # offset: checks conditioning
    std = local_std(x, 5)
    for z, y, w in [(5, 5, 5), (0, 0, 0), (9, 3, 11), (1, 10, 6)]:
        box = x[max(0, z - 2):z + 3, max(0, y - 2):y + 3, max(0, w - 2):w + 3]
        assert std[z, y, w] == pytest.approx(box.std(), rel=1e-6)


def test_density_criterion_keeps_the_asked_share_near_dark_voxels():
    vol = np.random.default_rng(2).standard_normal((16, 32, 32)).astype(np.float32)
    vol[8, 16, 16] = -50.0
    keep = density_criterion(ndimage.gaussian_filter(vol, 1.0), 30.0, 5)
    assert 0.25 < keep.mean() < 0.35
    assert keep[6:11, 14:19, 14:19].all()  # the whole window around the dark voxel


def test_mask_covers_blobs_sheet_and_rod_not_empty_region():
    vol, truth = blobs_and_sheets((32, 64, 64), seed=0)
    mask = make_mask(vol, patch_size=2).astype(bool)
    assert mask.shape == vol.shape
    assert mask[truth].mean() > 0.9
    empty = np.zeros_like(truth)
    empty[:, :, 40:] = True  # the right part holds no structure (the rod stops at x ~ 21)
    assert mask[empty].mean() < 0.25


def test_mask_on_phantom_covers_structures_not_ice(phantom_small):
    """Most voxels of membranes, vesicles, filaments and particles, well under half of the ice."""
    ph = phantom_small.phantom
    mask = make_mask(ph.tomogram, patch_size=2).astype(bool)
    truth = ph.ground_truth < -0.1 * float(np.abs(ph.ground_truth[ph.labels != 5]).max())  # gold aside
    near = ndimage.binary_dilation(mask, iterations=2)  # a voxel or two of tolerance
    assert near[truth].mean() > 0.85
    empty_ice = ~ndimage.binary_dilation(ph.labels > 0, iterations=6)
    assert mask[empty_ice].mean() < 0.35


def test_percentages_100_skip_both_criteria_and_z_crop_cuts_both_ends():
    vol, _ = blobs_and_sheets((20, 32, 32), seed=1)
    full = make_mask(vol, density_percentage=100, std_percentage=100)
    assert full.all()
    cropped = make_mask(vol, density_percentage=100, std_percentage=100, z_crop=0.2)
    planes = cropped.reshape(20, -1).all(axis=1)
    # binned Z = 10 planes: 2 cut at each end -> 4 full-resolution planes at each end
    np.testing.assert_array_equal(planes, [False] * 4 + [True] * 12 + [False] * 4)


def test_mask_odd_shape_has_no_empty_last_plane():
    vol, _ = blobs_and_sheets((21, 33, 35), seed=2)
    mask = make_mask(vol, density_percentage=100, std_percentage=100)
    assert mask.shape == (21, 33, 35) and mask.dtype == np.int8 and mask[-1].all() and mask[:, -1].all()


@pytest.mark.parametrize("kwargs, option", [
    ({"density_percentage": 101}, "--density-percentage"),
    ({"std_percentage": -1}, "--std-percentage"),
    ({"z_crop": 0.5}, "--z-crop"),
    ({"patch_size": 0}, "--patch-size"),
])
def test_bad_settings(kwargs, option):
    with pytest.raises(InputError, match=option):
        make_mask(np.zeros((8, 8, 8), np.float32), **kwargs)


def test_cli_uses_deconv_tomo_and_fills_star(tmp_path):
    vol, truth = blobs_and_sheets((32, 64, 64), seed=3)
    raw = write_tomo(tmp_path / "tomos" / "TS_1.rec.mrc", vol, 12.0)
    inverted = write_tomo(tmp_path / "deconv" / "TS_1.rec.mrc", -vol, 12.0)  # "deconvolved": contrast flipped
    star = write_star(tmp_path / "tomograms.star", [{"rlnMicrographName": raw, "rlnDeconvTomoName": inverted,
                                                     "rlnMaskDensityPercentage": 40.0}])
    check_ok(invoke(["make-mask", star, "--mask-folder", "masks", "--patch-size", "2"], cwd=tmp_path))
    out = tmp_path / "masks" / "TS_1.rec_mask.mrc"
    with mrcfile.open(out) as m:
        assert m.data.dtype == np.int8 and m.voxel_size.x == pytest.approx(12.0)
        from_deconv = m.data.astype(bool)
    np.testing.assert_array_equal(from_deconv, make_mask(-vol, density_percentage=40, patch_size=2).astype(bool))
    df = read_star(star)
    assert df["rlnMaskName"].tolist() == ["masks/TS_1.rec_mask.mrc"]
    assert df["rlnMaskDensityPercentage"].tolist() == [40.0] and df["rlnMaskStdPercentage"].tolist() == [50.0]

    check_ok(invoke(["make-mask", star, "--mask_folder", "masks2", "--patch_size", "2", "--no_use_deconv_tomo",
                     "--density_percentage", "40", "--std_percentage", "50", "--z_crop", "0.1",
                     "--output_star", "other.star", "--tomo_idx", "1"], cwd=tmp_path))
    from_raw = mrcfile.read(tmp_path / "masks2" / "TS_1.rec_mask.mrc").astype(bool)
    assert from_raw[truth].mean() > 0.85 and from_deconv[truth].mean() < from_raw[truth].mean()
    assert read_star(tmp_path / "other.star")["rlnMaskName"].tolist() == ["masks2/TS_1.rec_mask.mrc"]


def test_cli_falls_back_to_raw_when_deconv_file_is_missing(tmp_path):
    vol, _ = blobs_and_sheets((16, 32, 32), seed=4)
    raw = write_tomo(tmp_path / "tomos" / "t.mrc", vol)
    star = write_star(tmp_path / "tomograms.star", [{"rlnMicrographName": raw, "rlnDeconvTomoName": "gone/t.mrc"}])
    result = check_ok(invoke(["make-mask", star, "--patch-size", "2"], cwd=tmp_path))
    assert "rlnDeconvTomoName" in result.stderr and "not found" in result.stderr
    assert (tmp_path / "mask" / "t_mask.mrc").exists()
