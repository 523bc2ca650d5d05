"""Refine trains with each subtomogram's real wedge: recorded angles (gaps missing) when extract gave a .tlt."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from isonet_steps.core.wedge import Wedge, measured_part
from isonet_steps.io.checkpoint import RefineStore
from isonet_steps.io.errors import InputError
from isonet_steps.io.mrc import write_volume
from isonet_steps.io.star import write_star
from isonet_steps.io.tilt_angles import write_tilt_angles
from isonet_steps.network.cubes import Cubes
from isonet_steps.network.pairs import BatchStream, PairPlan, make_batch, merge_with_prediction
from isonet_steps.network.refine import RefineData, RefineSettings, refine
from isonet_steps.steps import refine as refine_step
from isonet_steps.steps import row_wedge

#: -60..60° every 3°, with the views between -15° and +15° (exclusive) not recorded: a gap around 0°.
GAP_ANGLES = tuple(float(a) for a in range(-60, 61, 3) if abs(a) > 15)
GAP = Wedge.from_angles(GAP_ANGLES)
RANGE = Wedge.from_range(-60.0, 60.0)


def _gap_region(n: int) -> np.ndarray:
    """(kz, kx) rfft components the range measures but the gapped series does not (the gap)."""
    return (RANGE.mask_2d(n, n, rfft=True) > 0) & (GAP.mask_2d(n, n, rfft=True) == 0)


def _gap_spectrum(volume: np.ndarray) -> np.ndarray:
    """The rfft (over Z, X) components of ``volume`` in the gap, every ky."""
    spectrum = np.fft.rfftn(volume, axes=(0, 2))
    return spectrum[np.broadcast_to(_gap_region(volume.shape[0])[:, None, :], spectrum.shape)]


def _gap_power(volume: np.ndarray) -> float:
    return float(np.sum(np.abs(_gap_spectrum(volume)) ** 2))


def _cubes(n=2, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, size, size, size)).astype(np.float32)


@pytest.mark.parametrize("noise_level", [0.0, 0.5])
def test_pair_input_is_zero_in_the_gap_of_its_series(noise_level):
    assert len(GAP.intervals) == 2 and _gap_region(16).sum() > 10
    merged = _cubes()
    pairs = np.array([[0, 3], [1, 7]])
    x_gap, _ = make_batch(merged, [GAP, GAP], pairs, 16, noise_level, "noFilter", np.random.default_rng(1))
    x_range, _ = make_batch(merged, [RANGE, RANGE], pairs, 16, noise_level, "noFilter", np.random.default_rng(1))
    for xg, xr in zip(x_gap[..., 0], x_range[..., 0]):
        total = float(np.sum(np.abs(np.fft.rfftn(xr, axes=(0, 2))) ** 2))
        assert _gap_power(xg) < 1e-8 * total  # the gap is missing, noise included
        assert _gap_power(xr) > 0.02 * total  # the range measures it
        np.testing.assert_allclose(measured_part(xg, GAP), xg, atol=1e-4)


def test_range_wedges_make_the_same_batches_as_range_rows():
    merged = _cubes(3)
    rows = np.array([[-60.0, 60.0], [-45.0, 50.0], [-60.0, 60.0]])
    wedges = [Wedge.from_range(lo, hi) for lo, hi in rows]
    pairs = np.array([[0, 1], [1, 2], [2, 5], [1, 0]])
    a = make_batch(merged, rows, pairs, 8, 0.3, "ramp", np.random.default_rng(4))
    b = make_batch(merged, wedges, pairs, 8, 0.3, "ramp", np.random.default_rng(4))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    plan = PairPlan.make(np.arange(3), 2, 2, np.random.default_rng(0))
    s_rows = BatchStream(Cubes(merged), rows, plan, 8, 0.3, "ramp", 5)
    s_wedges = BatchStream(Cubes(merged), wedges, plan, 8, 0.3, "ramp", 5)
    try:
        for u, v in zip(s_rows.get(0, 1), s_wedges.get(0, 1)):
            np.testing.assert_array_equal(u, v)
    finally:
        s_rows.close()
        s_wedges.close()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_merge_takes_the_gap_from_the_prediction():
    original, prediction = _cubes(2, seed=3)
    merged_gap = _gap_spectrum(merge_with_prediction(original, prediction, GAP))
    merged_range = _gap_spectrum(merge_with_prediction(original, prediction, RANGE))
    # merging rescales (affine): in the gap the merged cube is the prediction's, under a range the original's
    assert _correlation(merged_gap, _gap_spectrum(prediction)) > 0.999
    assert _correlation(merged_gap, _gap_spectrum(original)) < 0.2
    assert _correlation(merged_range, _gap_spectrum(original)) > 0.999


def _tiny_star(root, with_files=True, second_angles=None):
    """Six 24³ subtomograms of two tomograms: the first with a gapped .tlt, the second with a range only
    (or ``second_angles`` as its own .tlt).
    """
    rng = np.random.default_rng(0)
    write_tilt_angles(root / "a.tlt", GAP_ANGLES)
    if second_angles is not None:
        write_tilt_angles(root / "b.tlt", second_angles)
    rows = []
    for i in range(6):
        cube = ndimage.gaussian_filter(rng.standard_normal((24, 24, 24)), 1.5).astype(np.float32)
        write_volume(root / "subtomo" / f"t_{i}.mrc", cube, 10.0)
        tomo = "a" if i < 3 else "b"
        angle_file = "None"
        if with_files and (tomo == "a" or second_angles is not None):
            angle_file = str((root / f"{tomo}.tlt").absolute())
        rows.append({"rlnSubtomoIndex": i + 1, "rlnImageName": f"subtomo/t_{i}.mrc", "rlnCubeSize": 16,
                     "rlnCropSize": 24, "rlnPixelSize": 10.0, "rlnTiltMin": -60.0, "rlnTiltMax": 60.0,
                     "rlnTiltAngleFile": angle_file})
    write_star(pd.DataFrame(rows), root / "subtomo.star")
    return root / "subtomo.star"


def test_load_subtomos_reads_each_angle_file_once(tmp_path, monkeypatch):
    star = _tiny_star(tmp_path)
    reads = []
    real = row_wedge.read_tilt_angles
    monkeypatch.setattr(row_wedge, "read_tilt_angles", lambda p: reads.append(p) or real(p))
    data = refine_step.load_subtomos(star)
    assert len(reads) == 1
    assert data.wedges is not None
    assert data.wedges[:3] == [GAP] * 3 and data.wedges[0].angles == GAP_ANGLES
    assert data.wedges[3:] == [RANGE] * 3
    np.testing.assert_array_equal(data.tilts, [[-60.0, 60.0]] * 6)


def test_load_subtomos_names_a_bad_angle_file(tmp_path):
    star = _tiny_star(tmp_path)
    (tmp_path / "a.tlt").write_text("10\n10\n")
    with pytest.raises(InputError, match="a.tlt"):
        refine_step.load_subtomos(star)


def test_fingerprint_tells_angle_lists_apart(tmp_path):
    cubes = _cubes(2, 16)
    tilts = np.array([[-60.0, 60.0]] * 2)

    def data(wedges):
        return RefineData(subtomos=cubes, tilts=tilts, names=["a", "b"], cube=16, wedges=wedges)

    other = Wedge.from_angles([a + (0.5 if a > 0 else 0.0) for a in GAP_ANGLES[:-1]] + [60.0])
    assert data([GAP, GAP]).fingerprint() != data([other, other]).fingerprint()
    assert data([GAP, GAP]).fingerprint() != data([RANGE, RANGE]).fingerprint()
    # range-only data keep the fingerprint they had before wedges (earlier result folders continue)
    assert data([RANGE, RANGE]).fingerprint() == RefineData(cubes, tilts, ["a", "b"], 16).fingerprint()


def test_tiny_refine_trains_with_angle_wedges_and_refuses_other_angles(tmp_path):
    settings = RefineSettings(iterations=1, epochs=1, steps_per_epoch=2, batch_size=2, filter_base=4, unet_depth=2,
                              convs_per_depth=2, noise_level=(0.1,), noise_start_iter=(1,), seed=3)
    data = refine_step.load_subtomos(_tiny_star(tmp_path))
    store = RefineStore(tmp_path / "results")
    state = refine(data, settings, store)
    assert state.completed == 1 and np.isfinite(state.iterations[-1].loss).all()
    assert store.model_path(1).exists()
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = refine_step.load_subtomos(_tiny_star(other_root, second_angles=GAP_ANGLES))
    with pytest.raises(InputError, match="subtomograms"):
        refine(other, settings, store)
