"""IMOD binary models and polygon mask boundaries (rlnMaskBoundary) in make-mask."""

from __future__ import annotations

import struct

import mrcfile
import numpy as np
import pytest

from _data_steps import blobs_and_sheets, read_star, write_star, write_tomo
from conftest import check_ok, invoke
from isonet_steps.core.mask import boundary_mask, make_mask, polygon_inside, split_boundary
from isonet_steps.io.errors import InputError
from isonet_steps.io.imod import FLAG_Z_FROM_MINUS_HALF, read_imod, read_imod_points, write_imod_model

SQUARE = np.array([[4, 6, 3], [12, 6, 3], [12, 14, 3], [4, 14, 3]], np.float32)  # x 4..12, y 6..14


def _square_inside(shape_yx):
    yy, xx = np.indices(shape_yx)
    return (yy >= 6) & (yy < 14) & (xx >= 4) & (xx < 12)


def _with_slab(polygon, z_lo, z_hi):
    return np.vstack([polygon, [[8, 8, z_lo], [8, 8, z_hi]]]).astype(np.float32)


# --- reading and writing ---------------------------------------------------------------------------

def test_write_then_read_gives_the_same_points_in_file_order(tmp_path):
    first = np.array([[1.25, 2.5, -0.5], [30.0, 2.0, 0.0], [15.5, 40.75, 0.0]], np.float32)
    second = np.array([[3.0, 4.0, 7.0], [5.0, 6.0, 19.5]], np.float32)
    path = write_imod_model(tmp_path / "b.mod", [first, second], image_size=(64, 48, 20))
    raw = path.read_bytes()
    # the spec's layout: 8-byte ID, 232-byte header, OBJT + 176 bytes, CONT + 16 + 12/point, IEOF
    assert raw[:8] == b"IMODV1.2" and raw[240:244] == b"OBJT" and raw[420:424] == b"CONT"
    assert raw.endswith(b"IEOF") and len(raw) == 240 + 180 + (20 + 36) + (20 + 24) + 4
    model = read_imod(path)
    np.testing.assert_array_equal(model.points, np.vstack([first, second]))
    assert model.points.dtype == np.float32 and model.contour_sizes == (3, 2)
    assert model.image_size == (64, 48, 20) and model.flags & FLAG_Z_FROM_MINUS_HALF
    np.testing.assert_array_equal(read_imod_points(path), model.points)


def test_reader_and_writer_agree_with_teamtomo_imodmodel(tmp_path):
    """An independent implementation of IMOD's binary spec (teamtomo's imodmodel) in both directions:
    its models read here point for point, and it reads ours back.
    """
    imodmodel = pytest.importorskip("imodmodel")
    import pandas as pd

    rng = np.random.default_rng(3)
    contours = [rng.uniform(0, 60, size=(n, 3)).astype(np.float32) for n in (5, 3, 7)]
    frame = pd.DataFrame({
        "object_id": [0] * 15, "contour_id": np.repeat([0, 1, 2], [5, 3, 7]),
        "x": np.vstack(contours)[:, 0], "y": np.vstack(contours)[:, 1], "z": np.vstack(contours)[:, 2]})
    theirs = tmp_path / "theirs.mod"
    imodmodel.write(frame, theirs)
    model = read_imod(theirs)
    np.testing.assert_array_equal(model.points, np.vstack(contours))
    assert model.contour_sizes == (5, 3, 7)

    ours = write_imod_model(tmp_path / "ours.mod", contours, image_size=(64, 64, 64))
    back = imodmodel.read(ours)
    assert list(back["contour_id"]) == list(frame["contour_id"])
    np.testing.assert_array_equal(back[["x", "y", "z"]].to_numpy(np.float32), np.vstack(contours))


def test_reader_skips_mesh_and_sized_chunks(tmp_path):
    """Meshes (no size field) and other chunks (an int32 byte count) between contours are skipped."""
    raw = write_imod_model(tmp_path / "a.mod", [SQUARE], image_size=(20, 20, 8)).read_bytes()
    mesh = (b"MESH" + struct.pack(">3i2h", 2, 3, 0, 0, 0)  # 2 vertices, 3 indices
            + np.ones(6, ">f4").tobytes() + np.arange(3, dtype=">i4").tobytes())
    sized = b"SIZE" + struct.pack(">i", 8) + np.zeros(2, ">f4").tobytes() + b"VIEW" + struct.pack(">i", 0)
    extra = np.array([[1, 2, 3]], np.float32)
    contour = b"CONT" + struct.pack(">iIii", 1, 0, 0, 0) + extra.astype(">f4").tobytes()
    (tmp_path / "b.mod").write_bytes(raw[:-4] + mesh + sized + contour + b"IEOF")
    np.testing.assert_array_equal(read_imod_points(tmp_path / "b.mod"), np.vstack([SQUARE, extra]))


@pytest.mark.parametrize("cut, words", [
    (100, ["truncated", "header"]),
    (300, ["truncated", "OBJT"]),
    (430, ["truncated", "CONT"]),
    (-4, ["truncated", "IEOF"]),
])
def test_truncated_model_is_a_clear_error(tmp_path, cut, words):
    raw = write_imod_model(tmp_path / "a.mod", [SQUARE], image_size=(20, 20, 8)).read_bytes()
    bad = tmp_path / "cut.mod"
    bad.write_bytes(raw[:cut])
    with pytest.raises(InputError) as info:
        read_imod(bad)
    message = str(info.value)
    assert str(bad) in message and "rlnMaskBoundary" in message
    for word in words:
        assert word in message


def test_corrupt_and_foreign_files_are_clear_errors(tmp_path):
    raw = write_imod_model(tmp_path / "a.mod", [SQUARE], image_size=(20, 20, 8)).read_bytes()
    cases = {
        "garbage_chunk.mod": (raw[:-4] + b"\x00\xff\x13\x07" + b"IEOF", "corrupt"),
        "negative.mod": (raw[:-4] + b"CONT" + struct.pack(">iIii", -5, 0, 0, 0) + b"IEOF", "corrupt"),
        "text.mod": (b"hello, this is not a model\n" * 20, "not an IMOD binary model"),
        "ascii.mod": (b"imod 1\nobject 0 1 0\ncontour 0 0 4\n" * 10, "ASCII"),
        "nan.mod": (raw[:-16] + np.full(3, np.nan, ">f4").tobytes() + b"IEOF", "NaN"),
    }
    for name, (content, word) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError, match=word) as info:
            read_imod(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(InputError, match="not found"):
        read_imod(tmp_path / "gone.mod")


# --- the polygon and the Z range -------------------------------------------------------------------

def test_polygon_inside_square_and_concave_shapes_exactly():
    np.testing.assert_array_equal(polygon_inside((20, 16), SQUARE[:, :2]), _square_inside((20, 16)))
    np.testing.assert_array_equal(polygon_inside((20, 16), SQUARE[::-1, :2]), _square_inside((20, 16)))
    ell = np.array([[2, 2], [10, 2], [10, 5], [5, 5], [5, 12], [2, 12]], float)  # an L: concave corner at (5, 5)
    yy, xx = np.indices((14, 14))
    expected = ((xx >= 2) & (xx < 10) & (yy >= 2) & (yy < 5)) | ((xx >= 2) & (xx < 5) & (yy >= 2) & (yy < 12))
    np.testing.assert_array_equal(polygon_inside((14, 14), ell), expected)


def test_polygon_inside_matches_winding_number_on_a_star():
    """A non-convex star with non-integer vertices, against an independent winding-number count."""
    angles = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    radius = np.where(np.arange(14) % 2 == 0, 13.3, 5.1)
    star = np.stack([16.2 + radius * np.cos(angles), 15.7 + radius * np.sin(angles)], axis=1)
    inside = polygon_inside((32, 34), star)
    yy, xx = np.indices((32, 34)) + 0.5
    a = np.arctan2(star[:, 1, None, None] - yy, star[:, 0, None, None] - xx)
    turn = np.diff(np.concatenate([a, a[:1]]), axis=0)
    winding = np.round(((turn + np.pi) % (2 * np.pi) - np.pi).sum(axis=0) / (2 * np.pi))
    np.testing.assert_array_equal(inside, winding != 0)
    assert 0.1 < inside.mean() < 0.5  # a real shape, neither empty nor everything


def test_last_two_points_far_apart_in_z_give_the_slab():
    shape = (24, 20, 16)
    for z_lo, z_hi in [(5.0, 17.0), (17.0, 5.0), (4.6, 16.6)]:  # order free; z rounds to the nearest section
        mask = boundary_mask(shape, _with_slab(SQUARE, z_lo, z_hi))
        expected = np.zeros(shape, bool)
        expected[5:18] = _square_inside(shape[1:])
        np.testing.assert_array_equal(mask, expected)
    # IMOD's Z runs from -0.5: a range from the bottom edge to beyond the top keeps every section
    np.testing.assert_array_equal(boundary_mask(shape, _with_slab(SQUARE, -0.5, 99.0)),
                                  np.broadcast_to(_square_inside(shape[1:]), shape))
    assert not boundary_mask(shape, _with_slab(SQUARE, 40.0, 60.0)).any()  # range wholly above the volume
    only_slab = boundary_mask(shape, np.array([[0, 0, 2], [0, 0, 12]], np.float32))  # no polygon: slab only
    assert only_slab[2:13].all() and not only_slab[:2].any() and not only_slab[13:].any()


def test_last_two_points_close_in_z_are_polygon_vertices_over_all_z():
    pentagon = np.array([[4, 6, 3], [12, 6, 3], [14, 10, 8], [12, 14, 12], [4, 14, 3]], np.float32)  # dz 9 < 10
    first, last, polygon = split_boundary(pentagon, 24)
    assert (first, last) == (0, 23) and len(polygon) == 5
    mask = boundary_mask((24, 20, 16), pentagon)
    np.testing.assert_array_equal(mask, np.broadcast_to(polygon_inside((20, 16), pentagon[:, :2]), mask.shape))
    assert mask[:, 10, 12:14].all()  # the fifth vertex's bulge is kept: it was not taken as a Z point


@pytest.mark.parametrize("points, word", [
    (np.zeros((0, 3)), "no points"),
    (np.array([[1, 1, 0], [5, 5, 2]]), "2 polygon point"),  # close in z: a 2-point polygon
    (np.array([[1, 1, 0], [0, 0, 2], [0, 0, 15]]), "1 polygon point"),
    (np.array([[1, 1, 0], [9, 9, 0], [0, 0, 2], [0, 0, 15]]), "2 polygon point"),
])
def test_too_few_polygon_points_is_a_clear_error(points, word):
    with pytest.raises(InputError, match=word) as info:
        split_boundary(points, 20, "tomos/b.mod")
    assert "tomos/b.mod" in str(info.value) and "rlnMaskBoundary" in str(info.value)


def test_make_mask_with_boundary_is_the_mask_and_the_boundary():
    vol, _ = blobs_and_sheets((20, 32, 32), seed=5)
    points = _with_slab(SQUARE * [2, 2, 1], 4, 15)
    plain = make_mask(vol, patch_size=2)
    bounded = make_mask(vol, patch_size=2, boundary=points)
    assert bounded.dtype == np.int8
    np.testing.assert_array_equal(bounded, plain * boundary_mask(vol.shape, points))


# --- make-mask end to end ----------------------------------------------------------------------------

def test_cli_mask_is_zero_outside_the_polygon_and_unchanged_inside(tmp_path):
    vol, _ = blobs_and_sheets((20, 32, 32), seed=6)
    tomo = write_tomo(tmp_path / "tomos" / "TS_1.mrc", vol)
    polygon = np.array([[3, 4, 0], [28, 6, 0], [20, 27, 0], [6, 22, 0]], np.float32)  # a tilted quadrilateral
    write_imod_model(tmp_path / "tomos" / "TS_1.mod", [polygon, np.array([[0, 0, 3], [0, 0, 16]])],
                     image_size=(32, 32, 20))
    star = write_star(tmp_path / "tomograms.star", [{"rlnMicrographName": tomo, "rlnMaskBoundary": "tomos/TS_1.mod"}])
    result = check_ok(invoke(["make-mask", star, "--patch-size", "2"], cwd=tmp_path))
    assert "drawn on" not in result.stderr  # the model's image size matches: no warning
    mask = mrcfile.read(tmp_path / "mask" / "TS_1_mask.mrc").astype(bool)
    normal = make_mask(vol, patch_size=2).astype(bool)
    inside = np.zeros(vol.shape, bool)
    inside[3:17] = polygon_inside((32, 32), polygon[:, :2])
    assert not mask[~inside].any()
    np.testing.assert_array_equal(mask[inside], normal[inside])
    assert normal[~inside].any() and 0 < mask.sum() < inside.sum()  # the boundary removed something, kept some
    assert read_star(star)["rlnMaskName"].tolist() == ["mask/TS_1_mask.mrc"]


def test_cli_warns_when_the_model_was_drawn_on_another_size(tmp_path):
    vol, _ = blobs_and_sheets((16, 32, 32), seed=7)
    tomo = write_tomo(tmp_path / "t.mrc", vol)
    write_imod_model(tmp_path / "t.mod", [SQUARE], image_size=(64, 64, 32))  # e.g. drawn on an unbinned copy
    star = write_star(tmp_path / "tomograms.star", [{"rlnMicrographName": tomo, "rlnMaskBoundary": "t.mod"}])
    result = check_ok(invoke(["make-mask", star, "--patch-size", "2"], cwd=tmp_path))
    assert "drawn on a 64x64x32" in result.stderr
