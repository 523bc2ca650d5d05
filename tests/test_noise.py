"""Noise schedule and back-projection noise cubes."""

import numpy as np
import pytest

from isonet_steps.core.noise import make_noise_cubes, noise_schedule
from isonet_steps.core.wedge import Wedge, wedge_mask_2d
from isonet_steps.io.errors import InputError


def test_schedule_matches_isonet_defaults():
    s = noise_schedule(30, (0.05, 0.1, 0.15, 0.2), (11, 16, 21, 26))
    assert s[1:11] == [0.0] * 10
    assert s[11:16] == [0.05] * 5
    assert s[16:21] == [0.1] * 5
    assert s[21:26] == [0.15] * 5
    assert s[26:31] == [0.2] * 5


def test_schedule_rejects_bad_lists():
    with pytest.raises(InputError, match="one start iteration per level"):
        noise_schedule(10, (0.1, 0.2), (5,))
    with pytest.raises(InputError, match="increasing"):
        noise_schedule(10, (0.1, 0.2), (8, 5))


def _radial_power(cubes, n):
    f = np.abs(np.fft.fftn(cubes, axes=(1, 2, 3))) ** 2
    kz = np.fft.fftfreq(n)[:, None, None]
    kx = np.fft.fftfreq(n)[None, None, :]
    r = np.broadcast_to(np.hypot(kz, kx), f.shape[1:])
    inner = (r > 0.05) & (r < 0.15)
    outer = (r > 0.3) & (r < 0.45)
    m = np.broadcast_to(wedge_mask_2d(n, n, Wedge.from_range(-60, 60))[:, None, :], f.shape[1:]).astype(bool)
    return f.mean(axis=0), inner & m, outer & m, ~m & (r < 0.45) & (r > 0.05)


@pytest.mark.parametrize("mode,rising", [("noFilter", False), ("ramp", True)])
def test_noise_cubes_spectrum(mode, rising):
    n = 32
    cubes = make_noise_cubes(6, n, Wedge.from_range(-60, 60), mode=mode, rng=np.random.default_rng(0))
    assert cubes.shape == (6, n, n, n)
    assert np.allclose(cubes.std(axis=(1, 2, 3)), 1, atol=1e-3)
    assert np.allclose(cubes.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    p, inner, outer, missing = _radial_power(cubes, n)
    assert p[missing].mean() < 1e-6 * p[inner].mean()  # nothing in the missing wedge
    assert (p[outer].mean() > p[inner].mean()) == rising


def test_noise_cubes_reproducible():
    a = make_noise_cubes(2, 16, Wedge.from_range(-60, 60), rng=np.random.default_rng(5))
    b = make_noise_cubes(2, 16, Wedge.from_range(-60, 60), rng=np.random.default_rng(5))
    assert np.array_equal(a, b)
