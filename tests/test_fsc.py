"""Gold-standard FSC: known answers on synthetic halves (identical, independent, band-limited)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from isonet_steps.core.fsc import (
    DIRECTIONS,
    crossing_resolution,
    fourier_shell_correlation,
    soft_mask,
)
from isonet_steps.figures.fsc import fsc_figure
from isonet_steps.io.errors import InputError

PIXEL = 10.0  # Å
SHAPES = [(64, 64, 64), (48, 64, 64), (40, 56, 63)]


def _freq_grids(shape, pixel):
    nz, ny, nx = shape
    kz = np.fft.fftfreq(nz, pixel)[:, None, None]
    ky = np.fft.fftfreq(ny, pixel)[None, :, None]
    kx = np.fft.rfftfreq(nx, pixel)[None, None, :]
    return kz, ky, kx


def band_limited_noise(shape, rng, cut_xy_A, cut_z_A, pixel=PIXEL):
    """White noise kept inside the ellipsoid |k| <= 1/cut (X, Y at cut_xy, Z at cut_z), std 1."""
    kz, ky, kx = _freq_grids(shape, pixel)
    inside = (kx * cut_xy_A) ** 2 + (ky * cut_xy_A) ** 2 + (kz * cut_z_A) ** 2 <= 1.0
    spec = np.fft.rfftn(rng.standard_normal(shape)) * inside
    vol = np.fft.irfftn(spec, s=shape, axes=(0, 1, 2))
    return (vol / vol.std()).astype(np.float32)


def blob_phantom(shape, rng, cutoff_A, pixel=PIXEL, n_blobs=None):
    """Scattered small particles of random density, low-passed isotropically (hard) at ``cutoff_A``."""
    vol = np.zeros(shape, dtype=np.float64)
    n_blobs = n_blobs or int(np.prod(shape)) // 300
    idx = tuple(rng.integers(0, n, n_blobs) for n in shape)
    np.add.at(vol, idx, rng.uniform(0.5, 1.5, n_blobs) * rng.choice([-1.0, 1.0], n_blobs))
    vol = gaussian_filter(vol, 0.7, mode="wrap")
    kz, ky, kx = _freq_grids(shape, pixel)
    inside = kx**2 + ky**2 + kz**2 <= (1.0 / cutoff_A) ** 2
    vol = np.fft.irfftn(np.fft.rfftn(vol) * inside, s=shape, axes=(0, 1, 2))
    return (vol / vol.std()).astype(np.float32)


def noisy_halves(signal, rng, noise_std):
    return [(signal + noise_std * rng.standard_normal(signal.shape)).astype(np.float32) for _ in range(2)]


_AXES = {"x": (2,), "y": (1,), "z": (0,), "xy": (1, 2), "xz": (0, 2), "yz": (0, 1), "global": (0, 1, 2)}


def steps_off(result, direction, threshold, expected_A):
    """How far (in frequency) the reported resolution lies from ``expected_A``, in sampling steps.

    One step is one shell, 1 / (N * pixel) with N the largest side; along a shorter axis the
    Fourier grid itself is coarser (1 / (n_axis * pixel)), and no estimate can beat that.
    """
    step = max(1.0 / (result.shape[a] * result.pixel_size) for a in _AXES[direction])
    return abs(1.0 / result.resolution[threshold][direction] - 1.0 / expected_A) / step


# ------------------------------------------------------------------------------------ known answers


@pytest.mark.parametrize("shape", SHAPES)
def test_identical_halves_give_one_everywhere_and_nyquist(shape):
    vol = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    result = fourier_shell_correlation(vol, vol.copy(), PIXEL)
    for d in DIRECTIONS:
        curve = result.curves[d]
        finite = np.isfinite(curve)
        assert finite.sum() >= 0.8 * curve.size, d
        np.testing.assert_allclose(curve[finite], 1.0, atol=1e-6)
        for key in ("0.5", "0.143"):
            assert result.resolution[key][d] == pytest.approx(2 * PIXEL)
    # the global curve has data in every shell, up to Nyquist
    assert np.isfinite(result.curves["global"]).all()
    assert result.frequency[-1] == pytest.approx(1.0 / (2 * PIXEL), rel=0.02)


@pytest.mark.parametrize("shape", [(64, 64, 64), (40, 56, 63)])
def test_independent_noise_gives_fsc_near_zero(shape):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    result = fourier_shell_correlation(a, b, PIXEL)
    for d in DIRECTIONS:
        curve, n = result.curves[d], result.counts[d]
        use = (np.arange(curve.size) >= 3) & (n >= 40) & np.isfinite(curve)
        assert use.sum() > 10, d
        # FSC of unrelated halves has standard deviation ~ 1/sqrt(voxels in the shell)
        assert np.all(np.abs(curve[use]) < 5.0 / np.sqrt(n[use])), d
    glob = result.curves["global"][3:]
    assert np.abs(glob).mean() < 0.03
    # noise never reaches a resolution better than a few shells
    assert result.resolution["0.143"]["global"] > 100.0


@pytest.mark.parametrize("shape", [(64, 64, 64), (64, 96, 96)])
def test_isotropic_cutoff_is_found_in_every_direction(shape):
    # 45 Å lies between shells, so the interpolation matters. A hard cut-off inside a shell
    # leaves that shell partly filled, so the crossing lands between the cut-off and the shell's
    # outer edge: within one shell.
    cutoff = 45.0
    rng = np.random.default_rng(2)
    h1, h2 = noisy_halves(blob_phantom(shape, rng, cutoff), rng, noise_std=1.0)
    result = fourier_shell_correlation(h1, h2, PIXEL)
    for key in ("0.5", "0.143"):
        for d in DIRECTIONS:
            assert steps_off(result, d, key, cutoff) <= 1.0, (key, d, result.resolution[key][d])


@pytest.mark.parametrize("shape", [(64, 96, 96), (96, 96, 96)])
def test_anisotropic_cutoff_40_in_xy_80_in_z(shape):
    # "About" 40 and 80 Å: a 20° cone around Z also holds directions whose cut-off is a little
    # finer than 80 Å, and past the cut-off a cone shell of ~100 voxels scatters by ±0.1 around 0,
    # so the 0.143 crossing can come a shell late; allow 1.5 steps.
    rng = np.random.default_rng(3)
    h1, h2 = noisy_halves(band_limited_noise(shape, rng, 40.0, 80.0), rng, noise_std=1.0)
    result = fourier_shell_correlation(h1, h2, PIXEL)
    for key in ("0.5", "0.143"):
        res = result.resolution[key]
        for d in ("x", "y", "xy"):
            assert steps_off(result, d, key, 40.0) <= 1.5, (key, d, res[d])
        assert steps_off(result, "z", key, 80.0) <= 1.5, (key, res["z"])
        assert 1.6 < res["z"] / res["x"] < 2.4
        assert 1.6 < res["z"] / res["y"] < 2.4


def test_mask_recovers_resolution_hidden_by_noise_outside():
    shape = (64, 64, 64)
    rng = np.random.default_rng(4)
    signal = band_limited_noise(shape, rng, 45.0, 45.0)
    z, y, x = np.indices(shape) - 31.5
    inside = z**2 + y**2 + x**2 < 18.0**2
    h1, h2 = (np.where(inside, signal + 2.0 * rng.standard_normal(shape), 5.0 * rng.standard_normal(shape))
              .astype(np.float32) for _ in range(2))
    plain = fourier_shell_correlation(h1, h2, PIXEL)
    masked = fourier_shell_correlation(h1, h2, PIXEL, mask=inside.astype(np.int8))
    # the noise outside drowns the signal without a mask ...
    assert plain.resolution["0.5"]["global"] > 200.0
    # ... and the mask recovers the cut-off; a soft mask spreads a hard cut-off over ~2 shells
    assert steps_off(masked, "global", "0.5", 45.0) <= 1.0
    assert steps_off(masked, "global", "0.143", 45.0) <= 2.5
    assert np.nanmean(masked.curves["global"][2:12]) > np.nanmean(plain.curves["global"][2:12]) + 0.4


def test_inputs_left_untouched_unless_allowed():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((32, 32, 32)).astype(np.float32) + 3.0
    b = a + rng.standard_normal(a.shape).astype(np.float32)
    a0, b0 = a.copy(), b.copy()
    kept = fourier_shell_correlation(a, b, PIXEL, mask=np.ones(a.shape))
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    # scratch use of the inputs gives the same answer; read-only inputs are copied, not written
    a0.flags.writeable = False
    readonly = fourier_shell_correlation(a0, b0.copy(), PIXEL, mask=np.ones(a.shape), overwrite_input=True)
    scratch = fourier_shell_correlation(a, b, PIXEL, mask=np.ones(a.shape), overwrite_input=True)
    for d in DIRECTIONS:
        np.testing.assert_allclose(scratch.curves[d], kept.curves[d], rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(readonly.curves[d], kept.curves[d], rtol=1e-6, equal_nan=True)
    assert not np.array_equal(a, a0)  # really used as scratch space


# ------------------------------------------------------------------- against a brute-force version


def _brute_force(a, b, pixel, cone_deg=20.0):
    """Full (not half) spectrum, angles by arccos: an independent formulation of the same FSC."""
    shape = a.shape
    n = max(shape)
    fa = np.fft.fftn(a - a.mean())
    fb = np.fft.fftn(b - b.mean())
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(s, pixel) for s in shape), indexing="ij")
    r = np.sqrt(kx**2 + ky**2 + kz**2)
    # shell units: same expressions as the implementation, so ties at half shells break alike
    uz, uy, ux = np.meshgrid(*(np.fft.fftfreq(s) * n for s in shape), indexing="ij")
    shell = np.floor(np.sqrt(uz**2 + uy**2 + ux**2) + 0.5).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        ang = {ax: np.degrees(np.arccos(np.abs(k) / r)) for ax, k in (("x", kx), ("y", ky), ("z", kz))}
    select = {
        "global": np.ones(shape, bool),
        "x": ang["x"] <= cone_deg, "y": ang["y"] <= cone_deg, "z": ang["z"] <= cone_deg,
        "xy": ang["z"] >= 90 - cone_deg, "xz": ang["y"] >= 90 - cone_deg, "yz": ang["x"] >= 90 - cone_deg,
    }
    out = {}
    for d, sel in select.items():
        keep = sel & (shell <= n // 2) & (r > 0)
        s = shell[keep]
        cross = np.bincount(s, (fa * np.conj(fb)).real[keep], n // 2 + 1)
        p1 = np.bincount(s, np.abs(fa[keep]) ** 2, n // 2 + 1)
        p2 = np.bincount(s, np.abs(fb[keep]) ** 2, n // 2 + 1)
        cnt = np.bincount(s, minlength=n // 2 + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[d] = (np.where(cnt > 0, cross / np.sqrt(p1 * p2), np.nan)[1:], cnt[1:])
    return out


@pytest.mark.parametrize("shape", [(24, 32, 32), (20, 28, 31), (31, 30, 24)])
def test_matches_full_spectrum_brute_force(shape):
    rng = np.random.default_rng(6)
    a = rng.standard_normal(shape)
    b = 0.6 * a + rng.standard_normal(shape)
    result = fourier_shell_correlation(a, b, PIXEL)
    brute = _brute_force(a, b, PIXEL)
    for d in DIRECTIONS:
        curve, count = brute[d]
        np.testing.assert_array_equal(result.counts[d], count, err_msg=d)
        np.testing.assert_array_equal(np.isnan(result.curves[d]), np.isnan(curve), err_msg=d)
        np.testing.assert_allclose(result.curves[d], curve, atol=2e-4, equal_nan=True, err_msg=d)


def test_small_chunks_give_the_same_sums(monkeypatch):
    import isonet_steps.core.fsc as fsc

    rng = np.random.default_rng(7)
    a = rng.standard_normal((24, 32, 30))
    b = a + rng.standard_normal(a.shape)
    whole = fourier_shell_correlation(a, b, PIXEL)
    monkeypatch.setattr(fsc, "_CHUNK_VOXELS", 100)
    chunked = fourier_shell_correlation(a, b, PIXEL)
    for d in DIRECTIONS:
        np.testing.assert_allclose(chunked.curves[d], whole.curves[d], rtol=1e-9, equal_nan=True)


# ----------------------------------------------------------------------------------- the crossing


def test_crossing_is_interpolated_between_shells():
    f = np.array([0.01, 0.02, 0.03, 0.04])
    # 0.8 at 0.02 and 0.3 at 0.03: 0.5 is reached 60 % of the way, at 0.026 /Å
    assert crossing_resolution(f, np.array([1.0, 0.8, 0.3, 0.1]), 0.5) == pytest.approx(1 / 0.026)
    # an empty shell in between is stepped over: 0.8 at 0.02, 0.2 at 0.04 -> halfway, 0.03 /Å
    assert crossing_resolution(f, np.array([1.0, 0.8, np.nan, 0.2]), 0.5) == pytest.approx(1 / 0.03)
    # so is a shell with too few voxels to mean anything
    counts = np.array([6, 30, 4, 50])
    curve = np.array([1.0, 0.8, 0.0, 0.2])
    assert crossing_resolution(f, curve, 0.5, counts, min_voxels=20) == pytest.approx(1 / 0.03)
    assert crossing_resolution(f, curve, 0.5, counts, min_voxels=1) == pytest.approx(1 / (0.02 + 0.01 * 0.3 / 0.8))
    # the lowest shell is not tested: a dip there does not count
    assert crossing_resolution(f, np.array([0.1, 0.9, 0.9, 0.2]), 0.5) == pytest.approx(1 / (0.03 + 0.01 * 0.4 / 0.7))
    # never below: infinite (the caller reports Nyquist)
    assert crossing_resolution(f, np.array([1.0, 0.9, 0.8, 0.7]), 0.5) == np.inf


# ------------------------------------------------------------------------------- bad input, masks


def test_bad_inputs_raise_input_error():
    a = np.zeros((16, 16, 16), np.float32)
    with pytest.raises(InputError, match="shape"):
        fourier_shell_correlation(a, np.zeros((16, 16, 18)), PIXEL)
    with pytest.raises(InputError, match="mask has shape"):
        fourier_shell_correlation(a, a, PIXEL, mask=np.ones((16, 16, 15)))
    with pytest.raises(InputError, match="empty"):
        fourier_shell_correlation(a, a, PIXEL, mask=np.zeros((16, 16, 16)))
    with pytest.raises(InputError, match="pixel size"):
        fourier_shell_correlation(a, a, 0.0)
    with pytest.raises(InputError, match="cone-angle"):
        fourier_shell_correlation(a, a, PIXEL, cone_angle=95.0)


def test_soft_mask_is_smooth_weights_in_unit_range():
    m = np.zeros((32, 32, 32), np.int8)
    m[8:24, 8:24, 8:24] = 1
    w = soft_mask(m, 2.0)
    assert w.dtype == np.float32 and w.max() == pytest.approx(1.0) and w.min() >= 0.0
    assert 0.2 < w[8, 16, 16] < 0.8  # the edge is softened ...
    assert w[16, 16, 16] == pytest.approx(1.0, abs=1e-3)  # ... the inside is not
    np.testing.assert_array_equal(soft_mask(m * 7, 0.0), m.astype(np.float32))


def test_to_dict_and_plot():
    rng = np.random.default_rng(8)
    h1, h2 = noisy_halves(band_limited_noise((32, 32, 32), rng, 40.0, 80.0), rng, 1.0)
    result = fourier_shell_correlation(h1, h2, PIXEL)
    d = result.to_dict()
    assert set(d["resolution_A"]) == {"0.5", "0.143"}
    for key in ("0.5", "0.143"):
        assert set(d["resolution_A"][key]) == set(DIRECTIONS)
    assert len(d["frequency_per_A"]) == len(d["fsc"]["z"]) == 16
    from PIL import Image

    from isonet_steps.figures.plots import figure_png

    img = np.asarray(Image.open(io.BytesIO(figure_png(fsc_figure(result)))).convert("RGB"))
    assert img.shape == (400, 640, 3) and img.dtype == np.uint8
    # the black global curve and the blue Z curve are drawn
    assert (img == 0).all(axis=2).sum() > 100
    assert ((img[..., 2] > 150) & (img[..., 0] < 80)).sum() > 100
