"""A wedge from the recorded tilt angles: the union of measured directions, gaps included."""

import numpy as np
import pytest

from isonet_steps.core.wedge import (
    GAP_FACTOR,
    Wedge,
    apply_wedge,
    measured_intervals,
    measured_part,
    missing_part,
    wedge_mask_2d,
    wedge_mask_3d,
)


def _angle_radius(nz, nx):
    kz = np.fft.fftfreq(nz)[:, None]
    kx = np.fft.fftfreq(nx)[None, :]
    a = np.degrees(np.arctan2(kz, kx))
    a = np.where(a > 90, a - 180, a)
    a = np.where(a <= -90, a + 180, a)
    return a, np.hypot(kz, kx)


@pytest.mark.parametrize(("lo", "hi", "step"), [(-60, 60, 3), (-50, 65, 3), (-45, 66, 2), (-57, 60, 1.5)])
@pytest.mark.parametrize("rfft", [False, True])
def test_a_regular_series_gives_exactly_the_range_mask(lo, hi, step, rfft):
    angles = np.arange(lo, hi + step / 2, step)
    # refined angles jitter by a fraction of a step: still one interval, still the range mask
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, angles.size) * step
    jitter[[0, -1]] = 0.0
    for series in (angles, angles + jitter, angles[::-1]):
        wedge = Wedge.from_angles(series)
        assert wedge.intervals == ((float(lo), float(angles[-1])),)
        range_wedge = Wedge.from_range(lo, angles[-1])
        assert np.array_equal(wedge.mask_2d(40, 56, rfft=rfft), wedge_mask_2d(40, 56, range_wedge, rfft=rfft))


def test_a_range_wedge_is_the_range_mask_everywhere():
    w = Wedge.from_range(-45, 65)
    assert np.array_equal(w.mask_2d(32, 48), wedge_mask_2d(32, 48, w))
    assert np.array_equal(wedge_mask_3d((16, 8, 24), w), np.broadcast_to(w.mask_2d(16, 24)[:, None, :], (16, 8, 24)))
    rng = np.random.default_rng(4)
    v = rng.standard_normal((16, 12, 20)).astype(np.float32)
    np.testing.assert_allclose(measured_part(v, w) + missing_part(v, w), v, atol=1e-5)


def test_a_gap_in_the_series_is_missing_apart_from_half_a_step_beside_each_angle():
    angles = [a for a in np.arange(-60, 61, 3.0) if not 10 < a < 40]  # 9 .. 42: 11 steps apart
    wedge = Wedge.from_angles(angles)
    assert wedge.intervals == ((-60.0, 10.5), (40.5, 60.0))
    assert (wedge.tilt_min, wedge.tilt_max) == (-60.0, 60.0)
    mask = wedge.mask_2d(64, 64)
    angle, r = _angle_radius(64, 64)
    interior = (r > 4 / 64) & (r < 0.45)
    assert mask[interior & (angle > 12) & (angle < 39)].max() == 0  # the gap is missing
    assert mask[interior & (angle > 41) & (angle < 59)].min() == 1
    assert mask[interior & (angle > -59) & (angle < 10)].min() == 1
    # it is the union of two range masks
    below, above = Wedge.from_range(-60, 10.5), Wedge.from_range(40.5, 60)
    union = np.maximum(wedge_mask_2d(64, 64, below), wedge_mask_2d(64, 64, above))
    assert np.array_equal(mask, union)
    assert np.array_equal(wedge_mask_2d(64, 64, wedge), mask)


def test_gap_threshold_one_dropped_view_is_not_a_gap_two_are():
    regular = np.arange(-30, 31, 3.0)
    one_dropped = regular[regular != 9]
    two_dropped = regular[(regular != 9) & (regular != 12)]
    assert measured_intervals(one_dropped) == ((-30.0, 30.0),)
    assert measured_intervals(two_dropped) == ((-30.0, 7.5), (13.5, 30.0))
    assert 2.0 < GAP_FACTOR < 3.0


def test_uneven_steps_join_up_when_under_the_threshold():
    # a dose-symmetric-style list, unsorted, with steps 2 near zero and 3 beyond
    angles = [0, 2, -2, 4, -4, 6, -6, 9, -9, 12, -12, 15, -15, 18, -18]
    assert Wedge.from_angles(angles).intervals == ((-18.0, 18.0),)


def test_mirrored_negates_the_angles_and_is_an_involution():
    w = Wedge.from_angles([a for a in np.arange(-45, 66, 3.0) if not 20 < a < 40])
    m = w.mirrored()
    assert (m.tilt_min, m.tilt_max) == (-w.tilt_max, -w.tilt_min)
    assert m.intervals == tuple((-hi, -lo) for lo, hi in reversed(w.intervals))
    assert m.mirrored() == w
    assert Wedge.from_range(-50, 65).mirrored() == Wedge.from_range(-65, 50)
    mask, mirrored_mask = w.mask_2d(48, 48), m.mask_2d(48, 48)
    assert np.array_equal(mirrored_mask, np.roll(mask[:, ::-1], 1, axis=1))  # kx -> -kx
    assert Wedge.from_range(-60, 60).is_symmetric() and not Wedge.from_range(-50, 65).is_symmetric()


def test_wedge_is_a_hashable_value_and_masks_are_cached_read_only():
    a, b = Wedge.from_angles([-60, -30, 0, 30, 60]), Wedge.from_angles((60.0, 30.0, 0.0, -30.0, -60.0))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Wedge.from_range(-60, 60)  # same ends, but the angles are known
    assert a.mask_2d(32, 32) is b.mask_2d(32, 32)
    with pytest.raises(ValueError):
        a.mask_2d(32, 32)[0, 0] = 0
    with pytest.raises(AttributeError):
        a.tilt_min = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("bad", [[10], [5, 5], []])
def test_fewer_than_two_angles_are_refused(bad):
    with pytest.raises(ValueError, match="two"):
        Wedge.from_angles(bad)


def test_range_outside_90_or_reversed_is_refused():
    with pytest.raises(ValueError):
        Wedge.from_range(-95, 60)
    with pytest.raises(ValueError):
        Wedge.from_range(60, -60)


def test_apply_wedge_with_a_gapped_wedge_keeps_exactly_its_fourier_components():
    w = Wedge.from_angles([a for a in np.arange(-60, 61, 3.0) if not -40 < a < -10])
    rng = np.random.default_rng(5)
    v = rng.standard_normal((24, 8, 32)).astype(np.float32)
    out = apply_wedge(v, 1.0, 0.0, w)
    expected = np.fft.ifftn(np.fft.fftn(v) * wedge_mask_3d(v.shape, w)).real
    assert np.allclose(out, expected, atol=1e-5)


def test_noise_and_metrics_take_a_wedge_and_keep_the_gap_empty():
    from isonet_steps.core.metrics import fourier_regions
    from isonet_steps.core.noise import make_noise_cubes, noise_amplitude_2d

    gapped = Wedge.from_angles([a for a in np.arange(-60, 61, 3.0) if not 10 < a < 40])
    plain = Wedge.from_range(-60, 60)
    amplitude = noise_amplitude_2d(32, 32, gapped, "noFilter")
    not_dc = np.ones_like(amplitude, dtype=bool)
    not_dc[0, 0] = False
    assert np.array_equal(amplitude > 0, (gapped.mask_2d(32, 32, rfft=True) > 0) & not_dc)
    plain_amplitude = noise_amplitude_2d(32, 32, plain, "ramp")
    assert np.array_equal(plain_amplitude > 0, (plain.mask_2d(32, 32, rfft=True) > 0) & not_dc)
    cubes = make_noise_cubes(2, 32, gapped, mode="ramp", rng=np.random.default_rng(0))
    power = (np.abs(np.fft.rfftn(cubes, axes=(1, 3))) ** 2).sum(axis=(0, 2))
    outside = gapped.mask_2d(32, 32, rfft=True) == 0
    assert power[outside].max() < 1e-6 * power.max()
    missing, measured = fourier_regions((32, 16, 32), gapped)
    missing_plain, _ = fourier_regions((32, 16, 32), plain)
    assert missing.sum() > missing_plain.sum() and not (missing & measured).any()
