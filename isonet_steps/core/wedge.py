"""The missing wedge: which Fourier components a single-axis tilt series measures.

Geometry (arrays ``[Z, Y, X]``, tilt axis Y): by the projection-slice theorem a projection at tilt
angle θ measures the central line of the (kz, kx) plane along ``(kz, kx) = k·(sin θ, cos θ)``, the
line at angle θ from the kx axis (the convention of :mod:`isonet_steps.core.phantom`'s projector). A
tilt range [θmin, θmax] therefore measures the double wedge of lines at angles [θmin, θmax] from kx;
everything else (around kz) is the missing wedge. For a reconstruction of the opposite handedness,
an asymmetric range is given as (−θmax, −θmin). As in IsoNet the mask is 2D
(kz, kx), the same for every ky, and components outside the inscribed circle of the (kz, kx) plane
count as unmeasured except the kx axis itself (the kz = 0 line, measured at every tilt).

A :class:`Wedge` carries a range or the recorded angles of a series (whose gaps are missing too);
every function here takes one (``Wedge.from_range(-60, 60)`` for IsoNet's usual ±60°): there is no
default range to fall back on silently. Which sign the angles
of IMOD, AreTomo or RELION need in this convention: ``docs/wedge-convention.md`` and
:mod:`isonet_steps.core.wedge_check`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

__all__ = ["GAP_FACTOR", "Wedge", "measured_intervals", "wedge_mask_2d", "apply_wedge", "measured_part",
           "missing_part", "wedge_mask_3d"]


def _angular_membership(nz: int, nx: int, intervals: tuple[tuple[float, float], ...],
                        rfft: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which (kz, kx) lie on a measured line (by angle from kx alone), and the kz, kx grids themselves."""
    kz = np.fft.fftfreq(nz)[:, None]
    kx = (np.fft.rfftfreq(nx) if rfft else np.fft.fftfreq(nx))[None, :]
    # angle of each (kz, kx) from the kx axis, folded into (-90, 90]: a line through the origin.
    angle = np.degrees(np.arctan2(kz, kx))
    angle = np.where(angle > 90.0, angle - 180.0, angle)
    angle = np.where(angle <= -90.0, angle + 180.0, angle)
    eps = 1e-6
    in_wedge = np.zeros(np.broadcast_shapes(kz.shape, kx.shape), dtype=bool)
    for lo, hi in intervals:
        in_wedge |= (angle >= lo - eps) & (angle <= hi + eps)
    if any(hi >= 90.0 - eps or lo <= -90.0 + eps for lo, hi in intervals):  # ±90 reaches kz from either side
        in_wedge |= np.isclose(np.abs(angle), 90.0)
    return in_wedge, kz, kx


@lru_cache(maxsize=64)
def _angular_mask(nz: int, nx: int, intervals: tuple[tuple[float, float], ...], rfft: bool) -> np.ndarray:
    """Boolean (kz, kx): on a measured line by angle alone (no inscribed circle); (0, 0), the ky axis, measured."""
    mask = _angular_membership(nz, nx, intervals, rfft)[0]
    mask[0, 0] = True  # kz = kx = 0 is the tilt axis (ky), which every projection contains
    mask.setflags(write=False)
    return mask


@lru_cache(maxsize=64)
def _intervals_mask(nz: int, nx: int, intervals: tuple[tuple[float, float], ...], rfft: bool) -> np.ndarray:
    """The (kz, kx) mask of the union of measured angular ``intervals`` (degrees from kx, each lo ≤ hi)."""
    in_wedge, kz, kx = _angular_membership(nz, nx, intervals, rfft)
    eps = 1e-6
    inside = (kz / 0.5) ** 2 + (kx / 0.5) ** 2 <= 1.0 + 1e-9
    mask = in_wedge & inside
    if any(lo - eps <= 0.0 <= hi + eps for lo, hi in intervals):  # the whole kx axis when 0° was recorded
        mask |= kz == 0
    mask[0, 0] = True  # the mean is always measured
    mask = mask.astype(np.float32)
    mask.setflags(write=False)
    return mask


#: An interval between consecutive recorded angles wider than this many median steps is a gap.
GAP_FACTOR = 2.5


def measured_intervals(angles, gap_factor: float = GAP_FACTOR) -> tuple[tuple[float, float], ...]:
    """The angular intervals (degrees, sorted, disjoint) that a list of recorded tilt angles measures.

    Each recorded angle covers the interval halfway to its neighbours, so consecutive angles
    normally join into one interval and a regular series gives exactly ``((min, max),)``: the
    range mask. Where consecutive angles are more than ``gap_factor`` median steps apart, only half
    a median step next to each is counted as measured: the views in between were not recorded.
    Why 2.5: refined angles (IMOD ``tiltalign``, AreTomo) jitter by a fraction of a step, and one
    dropped view (a gap of exactly 2 steps) still samples its direction as densely as a series of
    twice the step, which is no missing wedge; two or more dropped views (3 steps and more) are a
    hole. The ends stop at the extreme angles (a projection at θ measures the line at θ, no more).
    """
    a = np.unique(np.asarray(angles, dtype=np.float64))
    if a.size == 0:
        raise ValueError("no tilt angles")
    if a.size == 1:
        return ((float(a[0]), float(a[0])),)
    steps = np.diff(a)
    half = 0.5 * float(np.median(steps))
    intervals: list[list[float]] = [[float(a[0]), float(a[0])]]
    for left, right, step in zip(a[:-1], a[1:], steps):
        if step > gap_factor * 2.0 * half:
            intervals[-1][1] = float(left) + half
            intervals.append([float(right) - half, float(right)])
        else:
            intervals[-1][1] = float(right)
    return tuple((lo, hi) for lo, hi in intervals)


@dataclass(frozen=True)
class Wedge:
    """What one tilt series measured: its range and, when known, the recorded angles (degrees).

    A frozen, hashable value so later code passes one object instead of ``(tilt_min, tilt_max)``
    and masks can be cached by it. ``angles`` is None for a plain range (every direction between
    the ends measured); with angles, gaps in the series are missing too (:func:`measured_intervals`).
    """

    tilt_min: float
    tilt_max: float
    angles: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        """Refuse a reversed range or one past ±90° (a programming error: files are checked in io)."""
        if not (-90.0 <= self.tilt_min <= self.tilt_max <= 90.0):
            raise ValueError(f"tilt range {self.tilt_min:g}..{self.tilt_max:g}° must be ordered and within ±90°")

    @classmethod
    def from_range(cls, tilt_min: float, tilt_max: float) -> Wedge:
        """Every direction between ``tilt_min`` and ``tilt_max`` measured (the IsoNet 2 model)."""
        return cls(float(tilt_min), float(tilt_max))

    @classmethod
    def from_angles(cls, angles) -> Wedge:
        """The recorded angles, in any order (duplicates dropped); at least two."""
        a = np.unique(np.asarray([float(v) for v in angles], dtype=np.float64))
        if a.size < 2:
            raise ValueError(f"a tilt series needs at least two distinct angles, got {a.size}")
        return cls(float(a[0]), float(a[-1]), tuple(float(v) for v in a))

    @property
    def intervals(self) -> tuple[tuple[float, float], ...]:
        """The measured angular intervals (degrees from kx), sorted and disjoint."""
        if self.angles is None:
            return ((self.tilt_min, self.tilt_max),)
        return measured_intervals(self.angles)

    def mirrored(self) -> Wedge:
        """The same series with every angle negated: what the data hold if the sign convention differs."""
        if self.angles is None:
            return Wedge.from_range(-self.tilt_max, -self.tilt_min)
        return Wedge.from_angles([-a for a in self.angles])

    def is_symmetric(self) -> bool:
        """True when the wedge is its own mirror (then the data cannot tell the sign)."""
        return self.mirrored().intervals == self.intervals

    def mask_2d(self, nz: int, nx: int, *, rfft: bool = False) -> np.ndarray:
        """Measured region (1) of the (kz, kx) plane, numpy FFT order; cached, read-only."""
        return _intervals_mask(int(nz), int(nx), self.intervals, bool(rfft))

    def measured_directions(self, nz: int, nx: int, *, rfft: bool = False) -> np.ndarray:
        """Boolean (kz, kx), numpy FFT order: True where the direction lies on a measured line.

        The angular rule of :meth:`mask_2d` without its inscribed circle: a direction is measured
        or missing at every frequency, as the directional FSC needs (the cube's corners beyond the
        circle still belong to the direction they point in). Cached, read-only.
        """
        return _angular_mask(int(nz), int(nx), self.intervals, bool(rfft))

    def describe(self) -> str:
        """A short human description, e.g. ``-50..65° (41 angles, 1 gap)``."""
        text = f"{self.tilt_min:g}..{self.tilt_max:g}°"
        if self.angles is not None:
            gaps = len(self.intervals) - 1
            text += f" ({len(self.angles)} angles" + (f", {gaps} gap{'s' * (gaps > 1)})" if gaps else ")")
        return text


def wedge_mask_2d(nz: int, nx: int, wedge: Wedge, *, rfft: bool = False) -> np.ndarray:
    """Measured region (1) of the (kz, kx) plane in numpy FFT order (DC at index 0).

    With ``rfft=True`` the kx axis has ``nx // 2 + 1`` entries, matching ``rfftn`` over (Z, X).
    """
    return wedge.mask_2d(nz, nx, rfft=rfft)


def wedge_mask_3d(shape: tuple[int, int, int], wedge: Wedge) -> np.ndarray:
    """The 2D mask broadcast over ky: shape ``(nz, ny, nx)``, numpy FFT order."""
    nz, ny, nx = shape
    return np.broadcast_to(wedge.mask_2d(nz, nx)[:, None, :], (nz, ny, nx))


def apply_wedge(volume: np.ndarray, weight_measured: float, weight_missing: float, wedge: Wedge, *,
                workers: int = 1) -> np.ndarray:
    """Weight the measured and missing Fourier regions of ``volume`` (``[..., Z, Y, X]``)."""
    volume = np.asarray(volume, dtype=np.float32)
    nz, nx = volume.shape[-3], volume.shape[-1]
    mask = wedge.mask_2d(nz, nx, rfft=True)
    weights = (weight_measured * mask + weight_missing * (1.0 - mask)).astype(np.float32)[:, None, :]
    axes = (volume.ndim - 3, volume.ndim - 1)
    spectrum = scipy.fft.rfftn(volume, axes=axes, workers=workers)
    spectrum *= weights
    return scipy.fft.irfftn(spectrum, s=(nz, nx), axes=axes, workers=workers).astype(np.float32, copy=False)


def measured_part(volume: np.ndarray, wedge: Wedge, *, workers: int = 1) -> np.ndarray:
    """Keep only what the tilt series measured (IsoNet's "wedge filter")."""
    return apply_wedge(volume, 1.0, 0.0, wedge, workers=workers)


def missing_part(volume: np.ndarray, wedge: Wedge, *, workers: int = 1) -> np.ndarray:
    """Keep only the missing wedge (and the unmeasured corners)."""
    return apply_wedge(volume, 0.0, 1.0, wedge, workers=workers)
