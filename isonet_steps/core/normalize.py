"""Intensity normalisation used wherever the network sees data (IsoNet §6.2).

The network works on "protein bright" data scaled by robust percentiles: ``to_network`` inverts
the contrast and maps the 4th..96th percentiles to 0..1; ``from_network`` maps a prediction back
to the input's contrast (protein dark). Percentiles (not mean/std) keep gold beads and carbon
from dominating the scale.
"""

from __future__ import annotations

import numpy as np

LOW_PERCENTILE = 4.0
HIGH_PERCENTILE = 96.0


def percentile_normalize(x: np.ndarray, *, sample: int | None = 2_000_000,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """``(x - P4) / (P96 - P4)`` as float32; percentiles from a random sample on large volumes."""
    x = np.asarray(x, dtype=np.float32)
    lo, hi = robust_range(x, sample=sample, rng=rng)
    return ((x - lo) / (hi - lo + 1e-20)).astype(np.float32, copy=False)


def robust_range(x: np.ndarray, *, sample: int | None = 2_000_000,
                 rng: np.random.Generator | None = None) -> tuple[float, float]:
    """The 4th and 96th percentiles of ``x`` (estimated from ``sample`` voxels when larger)."""
    flat = np.asarray(x).reshape(-1)
    if sample is not None and flat.size > sample:
        rng = rng if rng is not None else np.random.default_rng(0)
        flat = flat[rng.integers(0, flat.size, size=sample)]
    lo, hi = np.percentile(flat, [LOW_PERCENTILE, HIGH_PERCENTILE])
    return float(lo), float(hi)


def to_network(x: np.ndarray, *, in_place: bool = False, **kwargs) -> np.ndarray:
    """Invert contrast (protein bright) and percentile-normalise: what the network is trained on.

    ``in_place=True`` overwrites a writable float32 ``x`` (else it works on a copy): for whole
    tomograms, where every temporary volume costs its size in memory and seconds of page faults.
    """
    if not in_place:
        return percentile_normalize(-np.asarray(x, dtype=np.float32), **kwargs)
    # (-x - P4(-x)) / (P96(-x) - P4(-x)) = (x - P96(x)) · -1 / (P96(x) - P4(x))
    lo, hi = robust_range(x, **kwargs)
    return _affine_in_place(x, hi, -1.0 / (hi - lo + 1e-20))


def from_network(y: np.ndarray, *, in_place: bool = False, **kwargs) -> np.ndarray:
    """Percentile-normalise a network output and return it to the input's contrast (protein dark).

    ``in_place=True`` overwrites a writable float32 ``y`` (else it works on a copy).
    """
    if not in_place:
        return -percentile_normalize(y, **kwargs)
    lo, hi = robust_range(y, **kwargs)
    return _affine_in_place(y, lo, -1.0 / (hi - lo + 1e-20))


def _affine_in_place(x: np.ndarray, offset: float, factor: float) -> np.ndarray:
    """``(x - offset) · factor`` in ``x`` itself when it is a writable float32 array, else in a copy."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.writeable):
        x = np.array(x, dtype=np.float32)
    x -= np.float32(offset)
    x *= np.float32(factor)
    return x
