"""The missing-wedge mask and filters: geometry from the tilt range, exact complementary split."""

import numpy as np
import pytest

from isonet_steps.core.wedge import Wedge, apply_wedge, measured_part, missing_part, wedge_mask_2d, wedge_mask_3d


def _angles(n):
    kz = np.fft.fftfreq(n)[:, None]
    kx = np.fft.fftfreq(n)[None, :]
    a = np.degrees(np.arctan2(kz, kx))
    a = np.where(a > 90, a - 180, a)
    a = np.where(a <= -90, a + 180, a)
    r = np.hypot(kz, kx)
    return a, r


@pytest.mark.parametrize("tilt", [(-60, 60), (-45, 60), (-30, 50), (-70, 70)])
def test_mask_matches_tilt_range(tilt):
    n = 64
    mask = wedge_mask_2d(n, n, Wedge.from_range(*tilt))
    angle, r = _angles(n)
    interior = (r > 2 / n) & (r < 0.45)
    lo, hi = tilt
    # a tilt θ measures the line at θ from kx: inside [lo, hi] measured, clearly outside missing
    assert mask[interior & (angle > lo + 1) & (angle < hi - 1)].min() == 1
    assert mask[interior & ((angle < lo - 1) | (angle > hi + 1))].max() == 0
    # area of measured part of the disc ≈ tilt span / 180°
    frac = mask[interior].mean()
    assert abs(frac - (tilt[1] - tilt[0]) / 180) < 0.03


def test_mask_point_symmetric_and_corners_missing():
    n = 48
    mask = wedge_mask_2d(n, n, Wedge.from_range(-60, 60))
    flipped = np.roll(mask[::-1, ::-1], (1, 1), axis=(0, 1))  # k -> -k in FFT order
    assert np.array_equal(mask, flipped)
    kz = np.fft.fftfreq(n)[:, None]
    kx = np.fft.fftfreq(n)[None, :]
    corner = (np.hypot(kz, kx) > 0.5) & (kz != 0)
    assert mask[corner].max() == 0
    assert mask[0].min() == 1  # the whole kx axis is measured at 0°
    assert mask[:, 0][1:].max() == 0  # kz axis missing for ±60


def test_asymmetric_mask_is_not_mirror_symmetric():
    m = wedge_mask_2d(64, 64, Wedge.from_range(-30, 60))
    mirrored = np.roll(m[:, ::-1], 1, axis=1)  # kx -> -kx
    assert not np.array_equal(m, mirrored)


def test_rfft_mask_is_the_half_of_the_full_mask():
    full = wedge_mask_2d(40, 56, Wedge.from_range(-50, 65))
    half = wedge_mask_2d(40, 56, Wedge.from_range(-50, 65), rfft=True)
    assert np.array_equal(full[:, : 56 // 2 + 1], half)


def test_measured_plus_missing_is_identity_and_parts_are_disjoint():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((32, 24, 40)).astype(np.float32)
    a, b = measured_part(v, Wedge.from_range(-55, 60)), missing_part(v, Wedge.from_range(-55, 60))
    assert np.allclose(a + b, v, atol=1e-5)
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    assert np.abs(fa * fb.conj()).max() < 1e-2 * np.abs(np.fft.fftn(v)).max() ** 2 / v.size


def test_measured_part_keeps_exactly_the_masked_fourier_components():
    rng = np.random.default_rng(2)
    v = rng.standard_normal((32, 16, 32)).astype(np.float32)
    out = apply_wedge(v, 1.0, 0.0, Wedge.from_range(-60, 60))
    expected = np.fft.ifftn(np.fft.fftn(v) * wedge_mask_3d(v.shape, Wedge.from_range(-60, 60))).real
    assert np.allclose(out, expected, atol=1e-5)


def test_batched_equals_single():
    rng = np.random.default_rng(3)
    batch = rng.standard_normal((3, 16, 16, 16)).astype(np.float32)
    together = measured_part(batch, Wedge.from_range(-60, 60))
    alone = np.stack([measured_part(c, Wedge.from_range(-60, 60)) for c in batch])
    assert np.allclose(together, alone, atol=1e-6)


def test_mask_matches_the_phantom_projector_for_an_asymmetric_tilt_range():
    from isonet_steps.core.phantom import make_phantom

    p = make_phantom((32, 48, 64), tilt_min=-30, tilt_max=60, snr=100, seed=1)
    power = np.abs(np.fft.rfftn(p.tomogram)) ** 2
    nz, _, nx = p.tomogram.shape
    kz = np.fft.fftfreq(nz)[:, None, None]
    kx = np.fft.rfftfreq(nx)[None, None, :]
    band = np.broadcast_to((np.hypot(kz, kx) > 0.05) & (np.hypot(kz, kx) < 0.4), power.shape)
    ours = np.broadcast_to(wedge_mask_2d(nz, nx, Wedge.from_range(-30, 60), rfft=True)[:, None, :] > 0.5,
                           power.shape)
    mirrored = np.broadcast_to(wedge_mask_2d(nz, nx, Wedge.from_range(-60, 30), rfft=True)[:, None, :] > 0.5,
                               power.shape)
    inside = power[band & ours].sum() / power[band].sum()
    assert inside > 0.9
    assert power[band & mirrored].sum() / power[band].sum() < inside - 0.2
