"""extract: counts, sizes, voxel size, raw content, halves, reproducibility, mask, stale files."""

from __future__ import annotations

import shutil

import mrcfile
import numpy as np
import pytest
import starfile

from conftest import check_bad_input, check_ok
from isonet_steps.core.extract import (
    centre_range,
    check_box_sizes,
    count_candidates,
    pick_centres,
    random_halves,
)
from isonet_steps.io.errors import InputError
from isonet_steps.io.star import read_subtomo_star

CUBE, CROP = 24, 32


def _extract(run_isonet, star, out, *extra):
    check_ok(run_isonet("extract", star, "--subtomo-folder", out / "subtomo", "--subtomo-star", out / "subtomo.star",
                        "--cube-size", CUBE, "--crop-size", CROP, *extra))
    return read_subtomo_star(out / "subtomo.star")


@pytest.fixture(scope="module")
def extracted(phantom_small, masked_tomo_star, run_isonet, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract")
    return out, _extract(run_isonet, masked_tomo_star, out)


def test_count_sizes_and_columns(extracted, phantom_small):
    out, df = extracted
    assert len(df) == 8 and sorted((out / "subtomo").iterdir()) == sorted(out / p for p in df["rlnImageName"])
    assert list(df["rlnSubtomoIndex"]) == list(range(1, 9))
    assert set(df["rlnCubeSize"]) == {CUBE} and set(df["rlnCropSize"]) == {CROP}
    assert set(df["rlnPixelSize"]) == {10.0}
    assert set(df["rlnTiltMin"]) == {-60.0} and set(df["rlnTiltMax"]) == {60.0}
    assert [p.split("/")[-1] for p in df["rlnImageName"]] == [f"tomo_{j:06d}.mrc" for j in range(8)]
    for name in df["rlnImageName"]:
        with mrcfile.open(out / name) as mrc:
            assert mrc.data.shape == (CROP, CROP, CROP) and mrc.data.dtype == np.float32
            assert mrc.voxel_size.x == pytest.approx(phantom_small.pixel_size)


def test_raw_values_at_recorded_centres_inside_mask(extracted, phantom_small):
    out, df = extracted
    tomo, mask = phantom_small.phantom.tomogram, phantom_small.mask_array
    h = CROP // 2
    for _, row in df.iterrows():
        z, y, x = int(row["rlnCoordinateZ"]), int(row["rlnCoordinateY"]), int(row["rlnCoordinateX"])
        assert mask[z, y, x] != 0
        assert all(c - h >= 0 and c - h + CROP <= n for c, n in zip((z, y, x), tomo.shape))
        with mrcfile.open(out / row["rlnImageName"]) as mrc:
            assert np.array_equal(mrc.data, tomo[z - h:z - h + CROP, y - h:y - h + CROP, x - h:x - h + CROP])


def test_halves_balanced(extracted):
    _, df = extracted
    counts = df["rlnRandomSubset"].value_counts().to_dict()
    assert counts == {1: 4, 2: 4}


def test_same_seed_same_files_other_seed_other_places(extracted, masked_tomo_star, run_isonet, tmp_path):
    out, df = extracted
    again = _extract(run_isonet, masked_tomo_star, tmp_path / "a")
    cols = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnRandomSubset"]
    assert again[cols].equals(df[cols])
    for a, b in zip(df["rlnImageName"], again["rlnImageName"]):
        with mrcfile.open(out / a) as ma, mrcfile.open(tmp_path / "a" / b) as mb:
            assert np.array_equal(ma.data, mb.data)
    other = _extract(run_isonet, masked_tomo_star, tmp_path / "b", "--seed", "7")
    assert not other[cols[:3]].equals(df[cols[:3]])


def test_without_mask_whole_interior_and_odd_count(tomo_star, run_isonet, tmp_path):
    star = tmp_path / "t.star"
    df = starfile.read(tomo_star)
    df["rlnNumberSubtomo"] = 7
    starfile.write(df, star)
    got = _extract(run_isonet, star, tmp_path)
    assert len(got) == 7
    assert sorted(got["rlnRandomSubset"].value_counts().tolist()) == [3, 4]


def test_stale_files_removed_others_kept(masked_tomo_star, run_isonet, tmp_path):
    folder = tmp_path / "subtomo"
    folder.mkdir()
    for name in ("tomo_000099.mrc", "tomo_000003.mrc", "other_000001.mrc", "tomo_000001_000000.mrc", "notes.txt"):
        (folder / name).write_text("old")
    _extract(run_isonet, masked_tomo_star, tmp_path)
    names = {p.name for p in folder.iterdir()}
    assert "tomo_000099.mrc" not in names
    assert {"other_000001.mrc", "tomo_000001_000000.mrc", "notes.txt"} <= names
    with mrcfile.open(folder / "tomo_000003.mrc") as mrc:  # rewritten, not stale content
        assert mrc.data.shape == (CROP,) * 3


def test_deconv_tomogram_preferred_unless_disabled(phantom_small, tomo_star, run_isonet, tmp_path):
    deconv = tmp_path / "tomo_deconv.mrc"
    with mrcfile.new(deconv) as mrc:
        mrc.set_data(-phantom_small.phantom.tomogram)
        mrc.voxel_size = 10.0
    star = tmp_path / "t.star"
    df = starfile.read(tomo_star)
    df["rlnDeconvTomoName"] = str(deconv)
    starfile.write(df, star)
    used = _extract(run_isonet, star, tmp_path / "d")
    plain = _extract(run_isonet, star, tmp_path / "p", "--no-use-deconv-tomo")
    with mrcfile.open(tmp_path / "d" / used["rlnImageName"][0]) as a, \
            mrcfile.open(tmp_path / "p" / plain["rlnImageName"][0]) as b:
        assert np.array_equal(a.data, -b.data)  # same places, opposite source


def test_tomo_idx_and_per_tomogram_reproducibility(phantom_small, tomo_star, run_isonet, tmp_path):
    shutil.copy(phantom_small.tomo, tmp_path / "second.mrc")
    df = starfile.read(tomo_star)
    df2 = df.copy()
    df2["rlnIndex"] = 2
    df2["rlnMicrographName"] = str(tmp_path / "second.mrc")
    star = tmp_path / "two.star"
    starfile.write(__import__("pandas").concat([df, df2], ignore_index=True), star)
    both = _extract(run_isonet, star, tmp_path / "both")
    only2 = _extract(run_isonet, star, tmp_path / "only2", "--tomo-idx", "2")
    assert len(both) == 16 and len(only2) == 8
    assert set(only2["rlnImageName"].str.split("/").str[-1].str.startswith("second_")) == {True}
    cols = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
    second = both[both["rlnMicrographName"].str.endswith("second.mrc")].reset_index(drop=True)
    assert second[cols].equals(only2[cols])
    assert not second[cols].equals(both.iloc[:8].reset_index(drop=True)[cols])  # tomograms draw independently


# ---- the science functions -------------------------------------------------------------------


def test_box_size_rules():
    assert check_box_sizes(64, None) == 80
    assert check_box_sizes(64, 64) == 64
    for cube, crop in ((60, None), (0, None), (64, 48)):
        with pytest.raises(InputError):
            check_box_sizes(cube, crop)


def test_centre_range_keeps_box_inside():
    lo, hi = centre_range(10, 4)
    assert (lo, hi) == (2, 8)
    assert hi - 2 + 4 == 10 and lo - 2 == 0
    lo, hi = centre_range(9, 5)
    assert lo - 5 // 2 == 0 and hi - 5 // 2 + 5 == 9


def test_pick_is_without_replacement_and_exact():
    mask = np.zeros((20, 20, 20), np.int8)
    spots = [(9, 9, 9), (10, 4, 15), (12, 15, 6), (4, 10, 10), (15, 15, 15)]
    for s in spots:
        mask[s] = 1
    counts = count_candidates(mask, mask.shape, 8)
    assert counts.sum() == 5
    got = pick_centres(mask, mask.shape, 8, 5, np.random.default_rng(0))
    assert sorted(map(tuple, got.tolist())) == sorted(spots)
    with pytest.raises(InputError, match="more subtomograms"):
        pick_centres(mask, mask.shape, 8, 6, np.random.default_rng(0))
    # a voxel too close to the edge for the box is not a candidate
    mask[1, 10, 10] = 1
    assert count_candidates(mask, mask.shape, 8).sum() == 5


def test_pick_without_mask_is_uniform_over_interior():
    shape = (12, 30, 40)
    got = pick_centres(None, shape, 10, 1500, np.random.default_rng(1))  # of 3 x 21 x 31 = 1953 centres
    assert len({tuple(c) for c in got.tolist()}) == 1500
    for axis, n in enumerate(shape):
        lo, hi = centre_range(n, 10)
        assert got[:, axis].min() >= lo and got[:, axis].max() <= hi
    assert set(got[:, 0].tolist()) == {5, 6, 7}
    assert abs(got[:, 2].mean() - 20.0) < 1.0 and abs(got[:, 1].mean() - 15.0) < 1.0


def test_random_halves_balanced():
    rng = np.random.default_rng(0)
    for n in range(0, 12):
        labels = random_halves(n, rng, first=2)
        assert abs(int((labels == 1).sum()) - int((labels == 2).sum())) <= 1
        assert set(labels.tolist()) <= {1, 2}
        if n % 2:
            assert (labels == 2).sum() > (labels == 1).sum()


def test_slab_halves_never_share_a_voxel(tomo_star, run_isonet, tmp_path):
    got = _extract(run_isonet, tomo_star, tmp_path / "s", "--split-halves", "slabs")
    again = _extract(run_isonet, tomo_star, tmp_path / "t", "--split-halves", "slabs")
    cols = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnRandomSubset"]
    assert got[cols].equals(again[cols])  # seeded, like the random split
    halves = got["rlnRandomSubset"].to_numpy()
    assert sorted(np.bincount(halves)[1:]) == [4, 4]
    centres = got[["rlnCoordinateZ", "rlnCoordinateY", "rlnCoordinateX"]].to_numpy()
    first = centres - CROP // 2
    for i in np.flatnonzero(halves == 1):
        for j in np.flatnonzero(halves == 2):
            overlap = np.all(np.abs(first[i] - first[j]) < CROP)
            assert not overlap, (centres[i], centres[j])
    width = 48  # slabs narrow to half the 96-voxel width (under 4·crop wide)
    for h in (1, 2):  # every box lies inside a slab of its own half
        slab = first[halves == h, 2] // width
        assert set(slab % 2) == {h - 1}
        assert np.all(first[halves == h, 2] + CROP <= (slab + 1) * width)
    random = _extract(run_isonet, tomo_star, tmp_path / "r")
    assert not random[["rlnCoordinateX"]].equals(got[["rlnCoordinateX"]])


def test_slab_split_refuses_a_mask_that_leaves_one_half_nothing(phantom_small, tomo_star, run_isonet, tmp_path):
    # the mask covers only the left of the tomogram: the second slab (x from 48) has no valid centre
    mask = np.zeros(phantom_small.phantom.tomogram.shape, dtype=np.int8)
    mask[:, :, :40] = 1
    with mrcfile.new(tmp_path / "left_mask.mrc") as mrc:
        mrc.set_data(mask)
    star = tmp_path / "left.star"
    df = starfile.read(tomo_star)
    df["rlnMaskName"] = str(tmp_path / "left_mask.mrc")
    starfile.write(df, star)
    out = tmp_path / "left"
    result = run_isonet("extract", star, "--subtomo-folder", out / "subtomo", "--subtomo-star", out / "s.star",
                        "--cube-size", CUBE, "--crop-size", CROP, "--split-halves", "slabs")
    line = check_bad_input(result, "--split-halves slabs", "half 1 / 2", "--split-halves random",
                           not_written=[out / "s.star", out / "subtomo"])
    assert "/ 0 valid centres" in line
    check_ok(run_isonet("extract", star, "--subtomo-folder", out / "subtomo", "--subtomo-star", out / "s.star",
                        "--cube-size", CUBE, "--crop-size", CROP))  # the random split still works


def test_slab_columns_and_half_mask():
    from isonet_steps.core.extract import HalfMask, slab_columns, slab_width

    assert slab_width(1000, 96) == 192 and slab_width(96, 32) == 48 and slab_width(40, 32) == 32
    one, two = slab_columns(100, 10, 1), slab_columns(100, 10, 2)
    assert not np.any(one & two)
    xs = np.flatnonzero(one)
    first = xs - 5
    assert np.all((first // 20) % 2 == 0) and np.all(first + 10 <= (first // 20 + 1) * 20)
    assert np.array_equal(np.flatnonzero(two)[:3], [25, 26, 27])  # the second slab starts at 20: centre 25
    mask = np.zeros((4, 6, 100), dtype=np.int8)
    mask[:, :, 40:60] = 1
    view = HalfMask(mask, one, mask.shape)[2, slice(1, 5), slice(0, 100)]
    assert view.shape == (4, 100) and np.array_equal(view[0], (mask[2, 1] != 0) & one)
    whole = HalfMask(None, two, mask.shape)[0, slice(1, 5), slice(10, 30)]
    assert whole.shape == (4, 20) and np.array_equal(whole[3], two[10:30])
