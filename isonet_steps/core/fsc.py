"""Gold-standard Fourier shell correlation, global and directional (paper Fig. 3b).

Two halves corrected independently agree only where both carry signal, so their correlation
shell by shell in Fourier space measures resolution. Missing-wedge correction is anisotropic by
nature, so besides the global curve we compute the FSC in cones around the X, Y and Z axes and in
slabs around the XY, XZ and YZ planes.

Geometry (arrays are ``[Z, Y, X]``):

- Frequencies are taken per axis in 1/Å (``fftfreq``/``rfftfreq`` with the voxel size), so
  non-cubic volumes need no padding. Shells have width ``1 / (N * pixel)`` with ``N`` the largest
  dimension; shell ``i`` holds the voxels with ``|k|`` within half a width of ``i / (N * pixel)``
  (shell 0 is the DC term and is left out). Shells go up to Nyquist, ``1 / (2 * pixel)``.
  Along a shorter axis the Fourier grid is coarser than the shells, so a narrow cone can have
  empty low shells: their FSC is NaN and the crossing search steps over them.
- Cone around X of half-angle ``a``: voxels whose direction is within ``a`` of ``+kx`` or ``-kx``
  (``|kx| >= |k| cos a``); likewise Y and Z. Plane XY: voxels within ``a`` of the plane ``kz = 0``
  (``|kz| <= |k| sin a``); likewise XZ (near ``ky = 0``) and YZ (near ``kx = 0``).
- The resolution at a threshold is where a curve first falls below it: the first shell past the
  lowest usable one whose FSC is under the threshold, interpolated linearly in frequency
  between it and the usable shell before; a curve that never falls below reports Nyquist.
  Usable shells hold at least ``MIN_SHELL_VOXELS`` (10) Fourier voxels: at the low end of a
  narrow cone a shell can hold one independent coefficient, whose "correlation" is chance.

- With the tomogram's :class:`~isonet_steps.core.wedge.Wedge`, two more curves split the voxels by
  the missing wedge: "measured" (the direction lies on a line the tilt series measured) and
  "wedge" (it does not: the missing wedge, and the gaps of a series with missing views). The rule
  is the Wedge's angle of (kz, kx) from the kx axis, the same for every ky, applied at every
  frequency (:meth:`Wedge.measured_directions`, no inscribed-circle cut); the ky axis itself (the
  tilt axis) is measured. The two partition every shell, so their counts add up to the global
  one. They show how well a correction restored the directions never measured against those
  that were, the key figure for missing-wedge correction.

Only half the spectrum is stored (``rfftn``); voxels whose mirror image is not stored count twice.
Sums are accumulated a few kz planes at a time with ``np.bincount``, so memory beyond the two
spectra stays small (a 300 x 1000 x 1000 pair needs about 2.4 GB of spectra).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..io.errors import InputError
from .wedge import Wedge

#: Curve names, in the order they are reported.
DIRECTIONS: tuple[str, ...] = ("global", "x", "y", "z", "xy", "xz", "yz")
#: The two curves of the missing-wedge split, present when the FSC is given the tomogram's wedge.
WEDGE_DIRECTIONS: tuple[str, ...] = ("measured", "wedge")
#: Thresholds reported by default: 0.5 and the gold-standard 0.143.
THRESHOLDS: tuple[float, ...] = (0.5, 0.143)
#: Shells with fewer Fourier voxels than this are not tested for a threshold crossing.
MIN_SHELL_VOXELS = 10
#: Voxels per accumulation chunk; bounds the temporaries of the shell sums.
_CHUNK_VOXELS = 1 << 21


@dataclass(frozen=True)
class FSCResult:
    """FSC curves and crossing resolutions of one pair of halves.

    ``frequency`` (1/Å) and every array in ``curves``/``counts`` run over shells 1 .. N//2 (DC
    left out). ``counts`` are Fourier voxels per shell over the full (not half) spectrum.
    ``resolution[threshold_key][direction]`` is in Å (NaN when a curve has too few shells).
    With a ``wedge`` the curves include :data:`WEDGE_DIRECTIONS` too.
    """

    frequency: np.ndarray
    curves: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    resolution: dict[str, dict[str, float]]
    pixel_size: float
    cone_angle: float
    shape: tuple[int, int, int]
    thresholds: tuple[float, ...] = field(default=THRESHOLDS)
    wedge: Wedge | None = None

    @property
    def directions(self) -> tuple[str, ...]:
        """The curves this result holds, in report order (the wedge split last, when computed)."""
        return tuple(d for d in (*DIRECTIONS, *WEDGE_DIRECTIONS) if d in self.curves)

    @property
    def nyquist(self) -> float:
        """Nyquist resolution in Å (twice the voxel size)."""
        return 2.0 * self.pixel_size

    def to_dict(self) -> dict:
        """JSON-ready form; NaN becomes None (null)."""

        def clean(values) -> list:
            return [float(f"{v:.8g}") if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]

        directions = self.directions
        data = {
            "pixel_size_A": float(self.pixel_size),
            "shape_zyx": [int(s) for s in self.shape],
            "cone_angle_deg": float(self.cone_angle),
            "shell_width_per_A": float(self.frequency[0]) if self.frequency.size else None,
            "nyquist_A": float(self.nyquist),
            "directions": list(directions),
            "frequency_per_A": clean(self.frequency),
            "fsc": {d: clean(self.curves[d]) for d in directions},
            "n_voxels": {d: [int(c) for c in self.counts[d]] for d in directions},
            "resolution_A": {
                key: {d: (None if not np.isfinite(v) else round(float(v), 3)) for d, v in per.items()}
                for key, per in self.resolution.items()
            },
        }
        if self.wedge is not None:
            data["wedge"] = wedge_to_dict(self.wedge)
        return data


def wedge_to_dict(wedge: Wedge) -> dict:
    """The wedge of an FSC as JSON: its range, recorded angles (or null) and the measured intervals."""
    return {
        "tilt_min_deg": float(wedge.tilt_min),
        "tilt_max_deg": float(wedge.tilt_max),
        "angles_deg": None if wedge.angles is None else [float(a) for a in wedge.angles],
        "measured_intervals_deg": [[float(lo), float(hi)] for lo, hi in wedge.intervals],
        "description": wedge.describe(),
    }


def wedge_from_dict(data: dict | None) -> Wedge | None:
    """The inverse of :func:`wedge_to_dict` (None stays None)."""
    if not data:
        return None
    if data.get("angles_deg"):
        return Wedge.from_angles(data["angles_deg"])
    return Wedge.from_range(float(data["tilt_min_deg"]), float(data["tilt_max_deg"]))


def threshold_key(threshold: float) -> str:
    """The JSON key of a threshold: ``0.5 -> "0.5"``, ``0.143 -> "0.143"``."""
    return f"{threshold:g}"


def soft_mask(mask: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """A mask as float32 weights in [0, 1] with a Gaussian-softened edge.

    A hard mask edge multiplies both halves by the same sharp step, whose spectrum correlates
    perfectly and inflates the FSC at high frequency; smoothing by ``sigma`` voxels avoids that.
    Negative values are treated as 0 and the maximum is scaled to 1 (the FSC ignores scale).
    """
    weights = np.clip(np.asarray(mask, dtype=np.float32), 0.0, None)
    top = float(weights.max()) if weights.size else 0.0
    if not top > 0:
        raise InputError("the mask is empty (no voxel above 0); give a mask that covers the sample.")
    if sigma > 0:
        from scipy.ndimage import gaussian_filter

        weights = gaussian_filter(weights, sigma=float(sigma), mode="constant", output=np.float32)
        top = float(weights.max())
    weights /= np.float32(top)
    return weights


def _prepared_spectrum(volume: np.ndarray, weights: np.ndarray | None, overwrite: bool) -> np.ndarray:
    """Mean-subtract (under the mask), apply the mask, return ``rfftn`` (complex64)."""
    from scipy import fft

    data = np.asarray(volume, dtype=np.float32)
    reusable = overwrite and data.flags.writeable and data.flags.c_contiguous
    if np.may_share_memory(data, volume) and not reusable:
        data = np.array(data, dtype=np.float32, order="C", copy=True)
    if weights is None:
        data -= np.float32(data.mean(dtype=np.float64))
    else:
        total = float(weights.sum(dtype=np.float64))
        # weighted mean slab by slab: float32 dot products, summed in float64
        mean = sum(float(np.vdot(w, d)) for w, d in zip(weights, data)) / total
        data -= np.float32(mean)
        data *= weights
    return fft.rfftn(data, overwrite_x=True, workers=-1)


def _direction_masks(kz2, ky2, kx2, r2, cos2: float, sin2: float) -> dict[str, np.ndarray]:
    """Boolean selections of the six directional subsets (order of ``DIRECTIONS[1:]``)."""
    return {
        "x": kx2 >= cos2 * r2,
        "y": ky2 >= cos2 * r2,
        "z": kz2 >= cos2 * r2,
        "xy": kz2 <= sin2 * r2,
        "xz": ky2 <= sin2 * r2,
        "yz": kx2 <= sin2 * r2,
    }


def _rfft_multiplicity(nx: int, size: int) -> np.ndarray:
    """Voxels whose conjugate mirror is not stored by rfftn stand for two (shape ``(1, 1, size)``)."""
    mult = np.full(size, 2.0, dtype=np.float32)
    mult[0] = 1.0
    if nx % 2 == 0:
        mult[-1] = 1.0
    return mult[None, None, :]


#: The bit of a voxel's code that says "measured" (after the six directional bits), with a wedge.
_MEASURED_BIT = len(DIRECTIONS) - 1


def _bin_codes(uz2, uy2, ux2, overflow: int, n_bins: int, cos2: float, sin2: float,
               measured: np.ndarray | None = None) -> np.ndarray:
    """Each voxel's bin ``shell + code·n_bins`` (raveled), ``code`` the 6-bit membership of the directions.

    ``measured`` (boolean, broadcastable to the chunk: ``(kz, 1, kx)``) adds a seventh bit, set on
    the directions the tilt series measured.
    """
    r2 = uz2 + uy2 + ux2
    idx = np.floor(np.sqrt(r2) + 0.5).astype(np.intp)
    np.minimum(idx, overflow, out=idx)
    masks = _direction_masks(uz2, uy2, ux2, r2, cos2, sin2)
    for bit, name in enumerate(DIRECTIONS[1:]):
        idx += masks[name].astype(np.intp) * ((1 << bit) * n_bins)
    if measured is not None:
        idx += measured.astype(np.intp) * ((1 << _MEASURED_BIT) * n_bins)
    return idx.ravel()


def _sums_by_direction(acc: np.ndarray, n_codes: int, n_bins: int, n_shells: int) -> dict[str, np.ndarray]:
    """Per direction, the sums over every code that includes it (global: all codes); the wedge split
    when the codes carry the measured bit.
    """
    acc = acc.reshape(4, n_codes, n_bins)[:, :, :n_shells]
    codes = np.arange(n_codes)
    sums = {"global": acc.sum(axis=1)}
    for bit, name in enumerate(DIRECTIONS[1:]):
        sums[name] = acc[:, (codes >> bit) & 1 == 1].sum(axis=1)
    if n_codes > 1 << _MEASURED_BIT:
        measured = (codes >> _MEASURED_BIT) & 1 == 1
        sums["measured"] = acc[:, measured].sum(axis=1)
        sums["wedge"] = acc[:, ~measured].sum(axis=1)
    return sums


def shell_sums(
    spec1: np.ndarray,
    spec2: np.ndarray,
    shape: tuple[int, int, int],
    pixel_size: float,
    cone_angle: float = 20.0,
    *,
    wedge: Wedge | None = None,
    progress=None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-shell sums of Re(F1 F2*), |F1|^2, |F2|^2 and voxel counts, for every direction.

    Returns the shell frequencies (1/Å, shells 0 .. N//2) and, per direction, an array
    ``(4, n_shells)`` of [cross, power1, power2, count]; with a ``wedge`` also "measured" and "wedge".
    """
    nz, ny, nx = shape
    n = max(shape)
    n_shells = n // 2 + 1
    overflow = n_shells  # bin for voxels beyond Nyquist (the cube's corners)
    # Frequencies in shell units (1 unit = 1 / (n * pixel)), float64 so that shell and cone
    # boundaries do not depend on rounding.
    uz = np.fft.fftfreq(nz) * n
    uy2 = np.square(np.fft.fftfreq(ny) * n)[None, :, None]
    ux = np.fft.rfftfreq(nx) * n
    ux2 = np.square(ux)[None, None, :]
    mult = _rfft_multiplicity(nx, ux.size)
    cos2 = float(np.cos(np.deg2rad(cone_angle)) ** 2)
    sin2 = float(np.sin(np.deg2rad(cone_angle)) ** 2)

    # Each voxel's membership of the six directional subsets is a 6-bit code; one bincount per
    # quantity over (code, shell) serves every direction at once.
    n_bins = n_shells + 1
    n_codes = 1 << (len(DIRECTIONS[1:]) + (wedge is not None))
    measured = None if wedge is None else wedge.measured_directions(nz, nx, rfft=True)[:, None, :]
    acc = np.zeros((4, n_codes * n_bins), dtype=np.float64)
    plane = ny * ux.size
    step = max(1, _CHUNK_VOXELS // plane)
    starts = range(0, nz, step)
    if progress is not None:
        starts = progress(starts, total=len(starts), desc="FSC shells", unit="chunk")
    for z0 in starts:
        z1 = min(nz, z0 + step)
        idx = _bin_codes(np.square(uz[z0:z1])[:, None, None], uy2, ux2, overflow, n_bins, cos2, sin2,
                         None if measured is None else measured[z0:z1])
        a = spec1[z0:z1]
        b = spec2[z0:z1]
        weights = (
            (a.real * b.real + a.imag * b.imag) * mult,
            (a.real * a.real + a.imag * a.imag) * mult,
            (b.real * b.real + b.imag * b.imag) * mult,
            np.broadcast_to(mult, a.shape),
        )
        for k, w in enumerate(weights):
            acc[k] += np.bincount(idx, weights=np.asarray(w, dtype=np.float64).ravel(), minlength=acc.shape[1])
    frequency = np.arange(n_shells, dtype=np.float64) / (n * pixel_size)
    return frequency, _sums_by_direction(acc, n_codes, n_bins, n_shells)


def crossing_resolution(
    frequency: np.ndarray,
    curve: np.ndarray,
    threshold: float,
    counts: np.ndarray | None = None,
    min_voxels: int = MIN_SHELL_VOXELS,
) -> float:
    """Resolution (Å) where ``curve`` first falls below ``threshold``; ``inf`` if it never does.

    Shells that are empty (NaN) or, when ``counts`` is given, hold fewer than ``min_voxels``
    Fourier voxels are not tested: a correlation of a handful of coefficients is noise (a narrow
    cone's second shell holds a single independent coefficient). Of the remaining shells the
    lowest is not tested either. The crossing is interpolated linearly in frequency between the
    first shell below the threshold and the tested-or-lowest shell before it.
    """
    usable = np.isfinite(curve) & (frequency > 0)
    if counts is not None:
        usable &= np.asarray(counts) >= min_voxels
    valid = np.flatnonzero(usable)
    if valid.size < 2:
        return float("nan")
    for prev, cur in zip(valid[:-1], valid[1:]):
        if curve[cur] < threshold:
            f0, f1 = frequency[prev], frequency[cur]
            c0, c1 = curve[prev], curve[cur]
            if c0 <= threshold:
                return float(1.0 / f0)
            t = (c0 - threshold) / (c0 - c1)
            return float(1.0 / (f0 + t * (f1 - f0)))
    return float("inf")


def _checked_shape(half1: np.ndarray, half2: np.ndarray, mask: np.ndarray | None, pixel_size: float,
                   cone_angle: float) -> tuple[int, int, int]:
    """The halves' common 3D shape; InputError for mismatched shapes, a bad pixel size or cone angle."""
    shape = tuple(int(s) for s in np.shape(half1))
    if shape != tuple(int(s) for s in np.shape(half2)):
        raise InputError(
            f"the halves differ in shape: {shape} vs {tuple(np.shape(half2))} (Z, Y, X); "
            "give two halves of the same tomogram, reconstructed the same way."
        )
    if len(shape) != 3 or min(shape) < 4:
        raise InputError(f"the halves have shape {shape}; the FSC needs 3D volumes of at least 4 voxels per side.")
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise InputError(f"pixel size {pixel_size:g} Å is not positive; give it with --pixel-size.")
    if not (0.0 < cone_angle < 90.0):
        raise InputError(f"--cone-angle {cone_angle:g}° must lie between 0 and 90 degrees; 20 is usual.")
    if mask is not None and tuple(np.shape(mask)) != shape:
        raise InputError(
            f"the mask has shape {tuple(np.shape(mask))} but the halves {shape} (Z, Y, X); "
            "give a mask made for this tomogram (same size and binning)."
        )
    return shape[0], shape[1], shape[2]


def _curves(sums: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """FSC curve and voxel count per direction over shells 1 .. N//2 (NaN where a shell is empty)."""
    curves: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for name in sums:
        cross, p1, p2, count = sums[name][:, 1:]
        denom = np.sqrt(p1 * p2)
        with np.errstate(invalid="ignore", divide="ignore"):
            curve = np.where((count > 0) & (denom > 0), cross / denom, np.nan)
        curves[name] = curve
        counts[name] = np.rint(count).astype(np.int64)
    return curves, counts


def _resolutions(frequency: np.ndarray, curves: dict[str, np.ndarray], counts: dict[str, np.ndarray],
                 thresholds: tuple[float, ...], min_shell_voxels: int, nyquist: float) -> dict[str, dict[str, float]]:
    """Crossing resolution (Å) per threshold and direction; Nyquist where a curve never falls below."""
    resolution: dict[str, dict[str, float]] = {}
    for t in thresholds:
        per = {}
        for name in curves:
            res = crossing_resolution(frequency, curves[name], t, counts[name], min_shell_voxels)
            per[name] = nyquist if np.isinf(res) else res
        resolution[threshold_key(t)] = per
    return resolution


def fourier_shell_correlation(
    half1: np.ndarray,
    half2: np.ndarray,
    pixel_size: float,
    *,
    mask: np.ndarray | None = None,
    mask_sigma: float = 2.0,
    cone_angle: float = 20.0,
    thresholds: tuple[float, ...] = THRESHOLDS,
    min_shell_voxels: int = MIN_SHELL_VOXELS,
    overwrite_input: bool = False,
    wedge: Wedge | None = None,
    progress=None,
) -> FSCResult:
    """Global and directional FSC between two independent half volumes ``[Z, Y, X]``.

    Parameters
    ----------
    half1, half2 : the two halves, same shape.
    pixel_size : voxel size in Å.
    mask : optional weights of the same shape; softened by ``mask_sigma`` voxels (0: as given).
    cone_angle : half-angle in degrees of the cones around the axes and slabs around the planes.
    thresholds : FSC values at which the resolution is reported.
    min_shell_voxels : shells with fewer Fourier voxels are not tested for a crossing.
    overwrite_input : allow the halves to be used as scratch space (saves memory).
    wedge : the tomogram's missing wedge; adds the "measured" and "wedge" curves (module docstring).
    progress : optional wrapper ``progress(iterable, total=, desc=, unit=)`` for a progress bar.

    Returns
    -------
    FSCResult with curves over shells 1 .. N//2 and the crossing resolutions in Å.

    Raises
    ------
    InputError for mismatched shapes, a bad pixel size or cone angle, or an empty mask.
    """
    shape = _checked_shape(half1, half2, mask, pixel_size, cone_angle)
    weights = None if mask is None else soft_mask(mask, mask_sigma)
    spec1 = _prepared_spectrum(half1, weights, overwrite_input)
    spec2 = _prepared_spectrum(half2, weights, overwrite_input)
    del weights
    frequency, sums = shell_sums(spec1, spec2, shape, pixel_size, cone_angle, wedge=wedge, progress=progress)
    del spec1, spec2
    curves, counts = _curves(sums)
    frequency = frequency[1:]
    resolution = _resolutions(frequency, curves, counts, thresholds, min_shell_voxels, 2.0 * float(pixel_size))
    return FSCResult(
        frequency=frequency,
        curves=curves,
        counts=counts,
        resolution=resolution,
        pixel_size=float(pixel_size),
        cone_angle=float(cone_angle),
        shape=shape,
        thresholds=tuple(thresholds),
        wedge=wedge,
    )
