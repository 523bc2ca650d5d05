"""The synthetic phantom: realistic content, and a reconstruction that really lacks the wedge."""

from __future__ import annotations

import time

import mrcfile
import numpy as np
import pytest
from scipy import ndimage

from conftest import check_ok
from isonet_steps.core.phantom import LABELS, add_noise, ground_truth_volume, make_phantom, project, tilt_angles

TINY = (32, 64, 64)


def _power_by_angle(volume: np.ndarray, lo: float, hi: float) -> float:
    """Mean 3D Fourier power of the standardised volume over (kz, kx) directions lo < φ < hi (deg).

    φ = atan2(kz, kx) folded into (-90, 90]; a tilt θ measures φ = θ. Very low and corner
    frequencies are left out.
    """
    v = (volume - volume.mean()) / volume.std()
    power = np.abs(np.fft.fftn(v)) ** 2
    nz, _, nx = v.shape
    kz = np.fft.fftfreq(nz)[:, None, None]
    kx = np.fft.fftfreq(nx)[None, None, :]
    phi = (np.degrees(np.arctan2(kz, kx)) + 90.0) % 180.0 - 90.0
    radius = np.hypot(kz, kx)
    chosen = np.broadcast_to((phi > lo) & (phi < hi) & (radius > 0.04) & (radius < 0.5), power.shape)
    return float(power[chosen].mean())


def _missing_over_measured(volume: np.ndarray, tilt_max: float = 60.0, margin: float = 5.0) -> float:
    missing = 0.5 * (_power_by_angle(volume, tilt_max + margin, 90.0)
                     + _power_by_angle(volume, -90.0, -tilt_max - margin))
    return missing / _power_by_angle(volume, -tilt_max + margin, tilt_max - margin)


def _elongation(volume: np.ndarray, centre) -> float:
    """Z/X spread of the dark blob at ``centre`` (second moments of its darker half)."""
    z0, y0, x0 = (int(round(c)) for c in centre)
    r = 7
    sub = -volume[max(0, z0 - r):z0 + r + 1, y0 - 1:y0 + 2, max(0, x0 - r):x0 + r + 1].mean(axis=1)
    sub = np.clip(sub - 0.5 * sub.max(), 0, None)
    zz, xx = np.mgrid[: sub.shape[0], : sub.shape[1]]
    m = sub.sum()
    mz, mx = (zz * sub).sum() / m, (xx * sub).sum() / m
    return float(np.sqrt(((zz - mz) ** 2 * sub).sum() / m) / np.sqrt(((xx - mx) ** 2 * sub).sum() / m))


def test_types_and_normalisation(phantom_small):
    ph = phantom_small.phantom
    assert ph.tomogram.shape == ph.ground_truth.shape == ph.labels.shape == (48, 96, 96)
    assert ph.tomogram.dtype == ph.ground_truth.dtype == np.float32
    assert ph.labels.dtype == np.int8
    assert abs(float(ph.tomogram.mean())) < 1e-3 and abs(float(ph.tomogram.std()) - 1.0) < 1e-3
    assert ph.pixel_size == 10.0


def test_ground_truth_is_dark_on_zero_background(phantom_small):
    gt, labels = phantom_small.phantom.ground_truth, phantom_small.phantom.labels
    assert gt.max() <= 1e-6
    far = ~ndimage.binary_dilation(labels > 0, iterations=6)
    assert np.abs(gt[far]).max() < 0.05 and np.median(np.abs(gt[far])) < 1e-4  # empty ice is 0
    for name in ("membrane", "vesicle", "filament", "particle"):
        assert gt[labels == LABELS[name]].mean() < -0.3, name
    gold = gt[labels == LABELS["gold"]]
    assert gold.mean() < -3.0 and gold.mean() < 3 * gt[labels == LABELS["particle"]].mean()


def test_content(phantom_small):
    labels = phantom_small.phantom.labels
    nz, ny, nx = labels.shape
    assert set(np.unique(labels)) == set(LABELS.values())
    # A horizontal membrane: one Z slice where membrane covers a large part of the field of view.
    per_slice = (labels == LABELS["membrane"]).sum(axis=(1, 2)) / (ny * nx)
    assert per_slice.max() > 0.1
    # Gold beads: solid spheres of radius ~3-4 voxels.
    beads, n = ndimage.label(labels == LABELS["gold"])
    assert n >= 3
    sizes = ndimage.sum(np.ones_like(beads), beads, range(1, n + 1))
    assert np.all((sizes > 4 / 3 * np.pi * 2.0**3) & (sizes < 4 / 3 * np.pi * 5.0**3))
    # Vesicles are hollow: the centre of each shell is empty.
    shells, m = ndimage.label(labels == LABELS["vesicle"])
    assert m >= 1
    for centre in ndimage.center_of_mass(labels == LABELS["vesicle"], shells, range(1, m + 1)):
        assert labels[tuple(int(round(c)) for c in centre)] == 0
    # Many particles; empty ice left over (objects cover a minority of the volume and the top/bottom is vacuum).
    assert ndimage.label(labels == LABELS["particle"])[1] >= 15
    assert (labels > 0).mean() < 0.3
    assert not labels[:4].any() and not labels[-4:].any()


def test_reproducible_and_independent_of_tilts():
    a = make_phantom(TINY, seed=3)
    b = make_phantom(TINY, seed=3)
    c = make_phantom(TINY, seed=4)
    d = make_phantom(TINY, seed=3, tilt_min=-45, tilt_max=50, tilt_step=5, snr=2.0)
    assert np.array_equal(a.tomogram, b.tomogram) and np.array_equal(a.ground_truth, b.ground_truth)
    assert not np.array_equal(a.ground_truth, c.ground_truth)
    assert np.array_equal(a.ground_truth, d.ground_truth) and np.array_equal(a.labels, d.labels)
    assert not np.array_equal(a.tomogram, d.tomogram)


def test_missing_wedge_is_missing(phantom_small):
    ph = phantom_small.phantom
    truth = _missing_over_measured(ph.ground_truth)
    tomo = _missing_over_measured(ph.tomogram)
    # The specimen has plenty of power around kz (horizontal membranes, slab); the tomogram has almost none.
    assert truth > 0.5
    assert tomo < 0.05 * truth, (tomo, truth)


def test_asymmetric_tilt_range_puts_the_wedge_where_it_belongs():
    ph = make_phantom(TINY, tilt_min=-20, tilt_max=60, tilt_step=4, snr=np.inf, seed=2)

    def ratio(lo, hi):
        return _power_by_angle(ph.tomogram, lo, hi) / _power_by_angle(ph.ground_truth, lo, hi)

    assert ratio(-15, 55) > 10 * ratio(-60, -25)
    assert ratio(-15, 55) > 10 * ratio(65, 90)


def test_gold_beads_are_dark_and_elongated_in_z(phantom_small):
    ph = phantom_small.phantom
    beads, n = ndimage.label(ph.labels == LABELS["gold"])
    centres = ndimage.center_of_mass(ph.labels == LABELS["gold"], beads, range(1, n + 1))
    tomo = [_elongation(ph.tomogram, c) for c in centres]
    truth = [_elongation(ph.ground_truth, c) for c in centres]
    assert np.mean(truth) < 1.1
    assert np.mean(tomo) > 1.2, tomo
    assert all(ph.tomogram[tuple(int(round(v)) for v in c)] < -2.0 for c in centres)


def test_contrast_is_dark(phantom_small):
    ph = phantom_small.phantom
    assert np.corrcoef(ph.tomogram.ravel(), ph.ground_truth.ravel())[0, 1] > 0.15


def test_noise_matches_requested_snr():
    truth, _ = ground_truth_volume(TINY, seed=5)
    angles = tilt_angles(-60, 60, 10)
    clean = project(truth, angles)
    noisy = add_noise(clean, 0.5, np.random.default_rng(0))
    for c, n in zip(clean, noisy):
        support = np.abs(c) > 0
        assert 0.45 < c[support].var() / (n - c).var() < 0.55


def test_tilt_angles():
    assert np.allclose(tilt_angles(-60, 60, 3), np.arange(-60, 61, 3))
    assert tilt_angles(-60, 58, 3)[-1] == 57


def test_default_size_is_fast():
    start = time.perf_counter()
    ph = make_phantom()
    elapsed = time.perf_counter() - start
    assert ph.tomogram.shape == (64, 160, 160)
    assert elapsed < 15.0, f"64x160x160 phantom took {elapsed:.1f} s"


def test_cli_writes_three_volumes_with_voxel_size(tmp_path, run_isonet):
    out = tmp_path / "ph"
    check_ok(run_isonet("make-phantom", out, "--shape", "32,64,64", "--pixel-size", "7.5", "--seed", "3",
                        "--snr", "1", "--tilt-step", "5"))
    expected = make_phantom(TINY, seed=3, snr=1.0, tilt_step=5, pixel_size=7.5)
    for name, array in (("tomo", expected.tomogram), ("ground_truth", expected.ground_truth),
                        ("labels", expected.labels)):
        with mrcfile.open(out / f"{name}.mrc") as mrc:
            assert mrc.data.shape == TINY
            assert mrc.voxel_size.x == pytest.approx(7.5)
            assert np.array_equal(mrc.data, array)
