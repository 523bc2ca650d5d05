"""Synthetic cryo-ET tomograms with a known ground truth, for tests, demos and benchmarks.

A phantom is a slab of ice holding membranes (one of them horizontal, parallel to XY: the
orientation the missing wedge wipes out), hollow vesicles, thin filaments, small particles and
gold beads, all dark (negative) on a zero background, as in raw cryo-ET. The content depends only
on the seed and the shape; the acquisition is then simulated like a real experiment: a single-axis
tilt series about Y, Gaussian noise at a chosen per-projection SNR, and a weighted back-projection.
So the reconstruction carries a real missing wedge, real noise and the real elongation along Z.

Geometry (used by every module): arrays are ``[Z, Y, X]``; a tilt angle θ measures the central
line of Fourier space along ``(kz, kx) = k·(sin θ, cos θ)``, so the missing wedge is the double
wedge of (kz, kx) directions outside [tilt_min, tilt_max] (around the kz axis for ±60°).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse

from ..io.errors import InputError

__all__ = [
    "Phantom",
    "LABELS",
    "make_phantom",
    "ground_truth_volume",
    "tilt_angles",
    "project",
    "add_noise",
    "weighted_back_projection",
]

#: Label values of :attr:`Phantom.labels`.
LABELS: dict[str, int] = {"ice": 0, "membrane": 1, "vesicle": 2, "filament": 3, "particle": 4, "gold": 5}

_REFERENCE_AREA = 160.0 * 160.0  # object counts are given for a 160 x 160 field of view


@dataclass(frozen=True)
class Phantom:
    """A simulated tomogram with its ground truth; all arrays ``[Z, Y, X]``.

    Attributes
    ----------
    tomogram : float32, zero mean and unit std; weighted back-projection of a noisy tilt series.
    ground_truth : float32 density; 0 = ice/vacuum, negative = protein/lipid, gold strongly negative.
    labels : int8 class map, see :data:`LABELS`.
    pixel_size : voxel size in Å.
    half1, half2 : with ``halves``, even/odd-style half tomograms (each from half the dose, so twice
        the noise variance, independent noise); ``tomogram`` is then exactly their mean, scaled
        like them.
    """

    tomogram: np.ndarray
    ground_truth: np.ndarray
    labels: np.ndarray
    pixel_size: float
    half1: np.ndarray | None = None
    half2: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def _bilayer(d: np.ndarray) -> np.ndarray:
    """Two dark leaflets ~3 voxels apart (a lipid bilayer at ~10 Å/voxel), peak -1 each."""
    s2 = 2.0 * 0.6**2
    return -(np.exp(-((d - 1.4) ** 2) / s2) + np.exp(-((d + 1.4) ** 2) / s2))


class _Canvas:
    """Density and label maps that objects are painted into, each within its own bounding box."""

    def __init__(self, shape: tuple[int, int, int], slab: tuple[float, float]):
        self.shape = shape
        self.density = np.zeros(shape, np.float32)
        self.labels = np.zeros(shape, np.int8)
        self.z0, self.z1 = slab

    def box(self, lo, hi):
        """Slices and broadcastable local coordinates (z, y, x) of a clipped box, or None if empty."""
        sl = []
        for a, b, n in zip(lo, hi, self.shape):
            a, b = max(0, int(np.floor(a))), min(n, int(np.ceil(b)) + 1)
            if b <= a:
                return None
            sl.append(slice(a, b))
        z, y, x = np.ogrid[sl[0], sl[1], sl[2]]
        return tuple(sl), (z.astype(np.float32), y.astype(np.float32), x.astype(np.float32))

    def in_slab(self, z: np.ndarray) -> np.ndarray:
        """Soft indicator of the ice slab: objects never stick out of the ice."""
        return _sigmoid((z - self.z0) / 0.7) * _sigmoid((self.z1 - z) / 0.7)

    def paint(self, sl, values: np.ndarray, label: int, amplitude: float, *, exclusive: bool) -> bool:
        """Add ``values`` (<= 0) at ``sl``; refuse (return False) if ``exclusive`` and it touches anything."""
        values = np.asarray(values, np.float32)
        if exclusive and np.any(self.labels[sl][values < -0.02 * amplitude] != 0):
            return False
        self.density[sl] += values
        region = self.labels[sl]
        region[values < -0.3 * amplitude] = label
        return True


def _between(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Uniform in [lo, hi]; the midpoint when the range is empty (thin slabs, small volumes)."""
    return float(rng.uniform(lo, hi)) if hi > lo else 0.5 * (lo + hi)


def _horizontal_membranes(cv: _Canvas, rng: np.random.Generator, keep_out) -> None:
    """A flat sheet (two bilayers, like an ER cisterna) parallel to XY over part of the field."""
    nz, ny, nx = cv.shape
    zc = 0.5 * (cv.z0 + cv.z1) + rng.uniform(-0.1, 0.1) * (cv.z1 - cv.z0)
    gap = rng.uniform(7.0, 10.0)
    cy, cx = rng.uniform(0.35, 0.65) * ny, rng.uniform(0.35, 0.65) * nx
    ay, ax = rng.uniform(0.28, 0.36) * ny, rng.uniform(0.28, 0.36) * nx
    for zm in (zc - gap / 2, zc + gap / 2):
        got = cv.box((zm - 4, 0, 0), (zm + 4, ny - 1, nx - 1))
        if got is None:
            continue
        sl, (z, y, x) = got
        inside = 1.0 - ((y - cy) / ay) ** 2 - ((x - cx) / ax) ** 2
        values = _bilayer(z - zm) * _sigmoid(inside * 12.0) * keep_out(y, x)
        cv.paint(sl, values, LABELS["membrane"], 1.0, exclusive=False)


def _tilted_membrane(cv: _Canvas, rng: np.random.Generator, keep_out) -> None:
    """A flat bilayer patch whose normal is 25-75° from Z, clipped by the ice slab."""
    nz, ny, nx = cv.shape
    polar, azimuth = np.deg2rad(rng.uniform(25, 75)), rng.uniform(0, 2 * np.pi)
    n = np.array([np.cos(polar), np.sin(polar) * np.sin(azimuth), np.sin(polar) * np.cos(azimuth)])
    c = np.array([_between(rng, cv.z0 + 4, cv.z1 - 4), rng.uniform(0.15, 0.85) * ny, rng.uniform(0.15, 0.85) * nx])
    radius = rng.uniform(0.22, 0.35) * min(ny, nx)
    got = cv.box(c - radius - 4, c + radius + 4)
    if got is None:
        return
    sl, (z, y, x) = got
    dz, dy, dx = z - c[0], y - c[1], x - c[2]
    d = dz * n[0] + dy * n[1] + dx * n[2]
    q2 = dz**2 + dy**2 + dx**2 - d**2
    values = _bilayer(d) * _sigmoid((radius - np.sqrt(np.maximum(q2, 0))) / 1.5) * cv.in_slab(z) * keep_out(y, x)
    cv.paint(sl, values, LABELS["membrane"], 1.0, exclusive=False)


def _vesicle(cv: _Canvas, rng: np.random.Generator) -> bool:
    """A hollow spherical shell (bilayer) inside the slab, not touching other objects."""
    nz, ny, nx = cv.shape
    room = 0.5 * (cv.z1 - cv.z0) - 3.0
    r = rng.uniform(6.0, max(6.5, min(15.0, room)))
    c = np.array([_between(rng, cv.z0 + r + 3, cv.z1 - r - 3), rng.uniform(0, ny), rng.uniform(0, nx)])
    got = cv.box(c - r - 4, c + r + 4)
    if got is None:
        return False
    sl, (z, y, x) = got
    rho = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
    return cv.paint(sl, _bilayer(rho - r) * cv.in_slab(z), LABELS["vesicle"], 1.0, exclusive=True)


def _filament(cv: _Canvas, rng: np.random.Generator) -> bool:
    """A thin solid tube (actin-like) or a hollow one (microtubule-like) along a random direction."""
    nz, ny, nx = cv.shape
    elevation = np.deg2rad(rng.uniform(-35, 35))
    azimuth = rng.uniform(0, 2 * np.pi)
    v = np.array([np.sin(elevation), np.cos(elevation) * np.sin(azimuth), np.cos(elevation) * np.cos(azimuth)])
    length = rng.uniform(0.35, 0.7) * max(ny, nx)
    mid = np.array([_between(rng, cv.z0 + 3, cv.z1 - 3), rng.uniform(0, ny), rng.uniform(0, nx)])
    p0 = mid - 0.5 * length * v
    hollow = rng.random() < 0.3
    radius = rng.uniform(4.5, 6.0) if hollow else rng.uniform(1.5, 2.8)
    ends = np.stack([p0, p0 + length * v])
    got = cv.box(ends.min(0) - radius - 3, ends.max(0) + radius + 3)
    if got is None:
        return False
    sl, (z, y, x) = got
    dz, dy, dx = z - p0[0], y - p0[1], x - p0[2]
    t = np.clip(dz * v[0] + dy * v[1] + dx * v[2], 0.0, length)
    rho = np.sqrt((dz - t * v[0]) ** 2 + (dy - t * v[1]) ** 2 + (dx - t * v[2]) ** 2)
    if hollow:
        values = -1.2 * np.exp(-((rho - radius) ** 2) / (2 * 0.8**2))
    else:
        values = -1.0 * _sigmoid((radius - rho) / 0.45)
    return cv.paint(sl, values * cv.in_slab(z), LABELS["filament"], 1.0, exclusive=True)


def _particle(cv: _Canvas, rng: np.random.Generator) -> bool:
    """A small macromolecule: 1-4 overlapping Gaussian subunits within a 3-6 voxel radius."""
    nz, ny, nx = cv.shape
    r = rng.uniform(3.0, 6.0)
    c = np.array([_between(rng, cv.z0 + r, cv.z1 - r), rng.uniform(0, ny), rng.uniform(0, nx)])
    k = int(rng.integers(1, 5))
    centres = c + rng.normal(size=(k, 3)) * 0.35 * r
    sigmas = rng.uniform(0.35, 0.5, size=k) * r
    weights = rng.uniform(0.7, 1.2, size=k)
    got = cv.box(c - 2 * r - 2, c + 2 * r + 2)
    if got is None:
        return False
    sl, (z, y, x) = got
    values = np.zeros(tuple(s.stop - s.start for s in sl), np.float32)
    for p, s, w in zip(centres, sigmas, weights):
        values -= w * np.exp(-((z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2) / (2 * s * s))
    peak = float(-values.min()) if values.size else 0.0
    if peak <= 0:
        return False
    values *= rng.uniform(1.0, 1.5) / peak
    return cv.paint(sl, values, LABELS["particle"], 1.0, exclusive=True)


def _gold(cv: _Canvas, rng: np.random.Generator) -> bool:
    """A solid gold bead (radius 3-4 voxels), far darker than anything biological."""
    nz, ny, nx = cv.shape
    r = rng.uniform(3.0, 4.0)
    c = np.array([_between(rng, cv.z0 + r + 1, cv.z1 - r - 1), rng.uniform(r, ny - r), rng.uniform(r, nx - r)])
    got = cv.box(c - r - 3, c + r + 3)
    if got is None:
        return False
    sl, (z, y, x) = got
    rho = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
    return cv.paint(sl, -6.0 * _sigmoid((r - rho) / 0.4), LABELS["gold"], 6.0, exclusive=True)


def _place(count: int, attempts: int, draw) -> int:
    placed = 0
    for _ in range(count * attempts):
        if placed >= count:
            break
        placed += bool(draw())
    return placed


def ground_truth_volume(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random but reproducible ground-truth density and label map of ``shape`` (Z, Y, X).

    The ice slab fills the central ~60 % of Z; one disc of the field of view is kept empty (so a
    sample mask has something to leave out). Object counts scale with the Y·X area, sizes are in
    voxels (tuned for ~10 Å/voxel). Returns ``(density float32, labels int8)``.
    """
    nz, ny, nx = (int(s) for s in shape)
    rng = np.random.default_rng([int(seed), 0x150])
    thickness = 0.6 * nz
    z0 = 0.5 * (nz - thickness) + rng.uniform(-0.05, 0.05) * nz
    cv = _Canvas((nz, ny, nx), (z0, z0 + thickness))

    # An empty region of ice: objects avoid it (a sentinel label), membranes fade out there.
    ey = rng.choice([0.25, 0.75]) * ny
    ex = rng.choice([0.25, 0.75]) * nx
    er = 0.18 * min(ny, nx)
    yy, xx = np.ogrid[:ny, :nx]
    empty = (yy - ey) ** 2 + (xx - ex) ** 2 <= er**2
    cv.labels[:, empty] = -1

    def keep_out(y, x):
        return _sigmoid((np.sqrt((y - ey) ** 2 + (x - ex) ** 2) - er) / 1.5)

    area = ny * nx / _REFERENCE_AREA
    _horizontal_membranes(cv, rng, keep_out)
    for _ in range(2):
        _tilted_membrane(cv, rng, keep_out)
    _place(max(1, round(3 * area)), 30, lambda: _vesicle(cv, rng))
    _place(max(2, round(5 * area)), 30, lambda: _filament(cv, rng))
    _place(max(3, round(4 * area)), 50, lambda: _gold(cv, rng))
    _place(max(8, round(70 * area)), 20, lambda: _particle(cv, rng))

    cv.labels[cv.labels < 0] = 0
    density = ndimage.gaussian_filter(cv.density, 0.5).astype(np.float32)
    return density, cv.labels


# --------------------------------------------------------------------------------------------
# Acquisition: projection, noise, weighted back-projection
# --------------------------------------------------------------------------------------------


def tilt_angles(tilt_min: float, tilt_max: float, tilt_step: float) -> np.ndarray:
    """Tilt angles in degrees from ``tilt_min`` to ``tilt_max`` (included when on the grid)."""
    n = int(np.floor((tilt_max - tilt_min) / tilt_step + 1e-6)) + 1
    return tilt_min + tilt_step * np.arange(n, dtype=np.float64)


def _detector_width(nz: int, nx: int) -> int:
    """Detector pixels covering every ray through the Z–X slice at any angle (no clipping)."""
    return int(np.ceil(np.hypot(nz, nx))) + 2


def _linear(coord: np.ndarray, n: int):
    """The two linear-interpolation neighbours of continuous indices ``coord`` that fall in [0, n).

    Yields ``(ok, index, weight)`` with ``ok`` a boolean mask over ``coord``.
    """
    i0 = np.floor(coord).astype(np.int64)
    f = coord - i0
    for off, w in ((0, 1.0 - f), (1, f)):
        idx = i0 + off
        yield (idx >= 0) & (idx < n) & (w > 0), idx, w


def _forward_operator(nz: int, nx: int, angles_deg: np.ndarray, nu: int) -> sparse.csr_matrix:
    """Ray-driven (Joseph) line integrals: rows = (tilt, detector u), columns = (z, x) voxels.

    Each ray steps through the axis it is closest to (z planes up to 45°, x columns beyond) and
    interpolates linearly along the other; the step length 1/|cos| or 1/|sin| weights the sum.
    """
    cz, cx, cu = (nz - 1) / 2, (nx - 1) / 2, (nu - 1) / 2
    u = np.arange(nu, dtype=np.float64)[:, None] - cu
    rows_u = np.arange(nu)[:, None]
    r_all, c_all, v_all = [], [], []
    for t, theta in enumerate(np.deg2rad(angles_deg)):
        c, s = np.cos(theta), np.sin(theta)
        if abs(c) >= abs(s):  # through z planes, interpolate along x
            k = np.arange(nz)[None, :]
            coord = (u - (k - cz) * s) / c + cx
            for ok, i, w in _linear(coord, nx):
                rr, kk = np.broadcast_arrays(rows_u, k)
                r_all.append(t * nu + rr[ok])
                c_all.append(kk[ok] * nx + i[ok])
                v_all.append(w[ok] / abs(c))
        else:  # through x columns, interpolate along z
            i = np.arange(nx)[None, :]
            coord = (u - (i - cx) * c) / s + cz
            for ok, k, w in _linear(coord, nz):
                rr, ii = np.broadcast_arrays(rows_u, i)
                r_all.append(t * nu + rr[ok])
                c_all.append(k[ok] * nx + ii[ok])
                v_all.append(w[ok] / abs(s))
    shape = (len(angles_deg) * nu, nz * nx)
    data = (np.concatenate(v_all).astype(np.float32), (np.concatenate(r_all), np.concatenate(c_all)))
    return sparse.csr_matrix(data, shape=shape)


def _back_operator(nz: int, nx: int, angles_deg: np.ndarray, nu: int) -> sparse.csr_matrix:
    """Voxel-driven back-projection: each (z, x) voxel reads each projection at its detector u."""
    cz, cx, cu = (nz - 1) / 2, (nx - 1) / 2, (nu - 1) / 2
    k, i = np.meshgrid(np.arange(nz), np.arange(nx), indexing="ij")
    voxel = (k * nx + i).ravel()
    r_all, c_all, v_all = [], [], []
    for t, theta in enumerate(np.deg2rad(angles_deg)):
        coord = ((i - cx) * np.cos(theta) + (k - cz) * np.sin(theta) + cu).ravel()
        for ok, j, w in _linear(coord, nu):
            r_all.append(voxel[ok])
            c_all.append(t * nu + j[ok])
            v_all.append(w[ok])
    shape = (nz * nx, len(angles_deg) * nu)
    data = (np.concatenate(v_all).astype(np.float32), (np.concatenate(r_all), np.concatenate(c_all)))
    return sparse.csr_matrix(data, shape=shape)


def project(volume: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Tilt series of ``volume`` about Y: line integrals in the Z–X plane, shape ``(n_tilts, Y, U)``.

    U covers every ray through the slice (no clipping of the slab at high tilt).
    """
    nz, ny, nx = volume.shape
    nu = _detector_width(nz, nx)
    a = _forward_operator(nz, nx, np.asarray(angles_deg, float), nu)
    flat = np.ascontiguousarray(volume.transpose(0, 2, 1), dtype=np.float32).reshape(nz * nx, ny)
    sino = np.asarray(a @ flat).reshape(len(angles_deg), nu, ny)
    return np.ascontiguousarray(sino.transpose(0, 2, 1))


def add_noise(projections: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise per projection with variance = that projection's signal variance / ``snr``.

    Signal variance is taken over the detector pixels that see the specimen (non-zero rays).
    """
    if not np.isfinite(snr):
        return projections.copy()
    noisy = np.empty_like(projections)
    for t, p in enumerate(projections):
        support = np.abs(p) > 0
        var = float(p[support].var()) if support.any() else 0.0
        sigma = np.sqrt(var / snr) if var > 0 else 0.0
        noisy[t] = p + rng.normal(0.0, sigma, size=p.shape).astype(p.dtype)
    return noisy


def _ramp(nu: int) -> tuple[np.ndarray, int]:
    """Frequency response of the band-limited (Ram-Lak) ramp filter, zero-padded against wrap-around."""
    npad = 1 << int(np.ceil(np.log2(2 * nu)))
    n = np.fft.fftfreq(npad) * npad
    h = np.zeros(npad)
    h[0] = 0.25
    odd = (np.abs(n) % 2) == 1
    h[odd] = -1.0 / (np.pi * n[odd]) ** 2
    return np.fft.rfft(h).real, npad


def weighted_back_projection(projections: np.ndarray, angles_deg: np.ndarray,
                             shape: tuple[int, int, int]) -> np.ndarray:
    """Ramp-filter each projection along the detector axis and back-project into ``shape``."""
    nz, ny, nx = shape
    n_tilts, _, nu = projections.shape
    response, npad = _ramp(nu)
    spectrum = np.fft.rfft(projections, n=npad, axis=2) * response
    filtered = np.fft.irfft(spectrum, n=npad, axis=2)[:, :, :nu].astype(np.float32)
    b = _back_operator(nz, nx, np.asarray(angles_deg, float), nu)
    flat = np.ascontiguousarray(filtered.transpose(0, 2, 1)).reshape(n_tilts * nu, ny)
    recon = np.asarray(b @ flat).reshape(nz, nx, ny).transpose(0, 2, 1)
    return np.ascontiguousarray(recon * (np.pi / max(n_tilts, 1)), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# The whole phantom
# --------------------------------------------------------------------------------------------


def _validate(shape, tilt_min, tilt_max, tilt_step, snr, pixel_size) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise InputError(f"--shape {shape} must have three sizes Z,Y,X, e.g. 64,160,160.")
    shape = tuple(int(s) for s in shape)
    if shape[0] < 16 or shape[1] < 32 or shape[2] < 32:
        raise InputError(f"--shape {','.join(map(str, shape))} is too small; use at least 16,32,32 (Z,Y,X voxels).")
    if not (-90.0 <= tilt_min <= 90.0 and -90.0 <= tilt_max <= 90.0):
        raise InputError(f"tilt range {tilt_min:g}..{tilt_max:g}° is outside ±90°; use angles within ±90 "
                         "(--tilt-min/--tilt-max).")
    if tilt_min >= tilt_max:
        raise InputError(f"--tilt-min {tilt_min:g} is not below --tilt-max {tilt_max:g}; swap them.")
    if not (tilt_step > 0 and tilt_step <= tilt_max - tilt_min):
        raise InputError(f"--tilt-step {tilt_step:g} must be > 0 and at most the tilt range "
                         f"({tilt_max - tilt_min:g}°), e.g. 3.")
    if not snr > 0:
        raise InputError(f"--snr {snr:g} must be > 0 (signal variance / noise variance per projection, e.g. 0.5).")
    if not (pixel_size > 0 and np.isfinite(pixel_size)):
        raise InputError(f"--pixel-size {pixel_size:g} is not a positive size in Å; give e.g. 10.")
    return shape


def make_phantom(
    shape: tuple[int, int, int] = (64, 160, 160),
    *,
    tilt_min: float = -60.0,
    tilt_max: float = 60.0,
    tilt_step: float = 3.0,
    snr: float = 0.5,
    seed: int = 0,
    pixel_size: float = 10.0,
    halves: bool = False,
) -> Phantom:
    """A ground-truth phantom and its simulated tomogram (tilt series + noise + WBP).

    Parameters
    ----------
    shape : (Z, Y, X) voxels.
    tilt_min, tilt_max, tilt_step : tilt series about Y, degrees.
    snr : per-projection signal variance / noise variance (``inf`` = noiseless).
    seed : the content depends only on ``seed`` and ``shape``; the noise on ``seed`` too.
    pixel_size : voxel size in Å (recorded only; object sizes are in voxels).
    halves : also simulate two independent half-dose tomograms (RELION 5 even/odd style).
    """
    shape = _validate(shape, tilt_min, tilt_max, tilt_step, snr, pixel_size)
    truth, labels = ground_truth_volume(shape, seed)
    angles = tilt_angles(tilt_min, tilt_max, tilt_step)
    noise_rng = np.random.default_rng([int(seed), 0x2A])
    clean = project(truth, angles)
    if not halves:
        recon = weighted_back_projection(add_noise(clean, snr, noise_rng), angles, shape)
        mean, std = float(recon.mean()), float(recon.std()) or 1.0
        return Phantom(tomogram=((recon - mean) / std).astype(np.float32), ground_truth=truth, labels=labels,
                       pixel_size=float(pixel_size))
    # half the dose each: twice the noise variance; the full tomogram is their mean (WBP is linear)
    parts = [weighted_back_projection(add_noise(clean, snr / 2.0, noise_rng), angles, shape) for _ in range(2)]
    recon = (parts[0] + parts[1]) / 2.0
    mean, std = float(recon.mean()), float(recon.std()) or 1.0
    scale = [((p - mean) / std).astype(np.float32) for p in (recon, *parts)]
    return Phantom(tomogram=scale[0], ground_truth=truth, labels=labels, pixel_size=float(pixel_size),
                   half1=scale[1], half2=scale[2])
