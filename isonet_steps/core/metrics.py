"""Quality figures against a known ground truth (phantoms): how well the wedge was filled.

Used by the benchmarks and by the report of the demo. All inputs are ``[Z, Y, X]`` arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .wedge import Wedge, wedge_mask_2d

__all__ = ["fourier_regions", "fourier_correlation", "real_space_correlation", "bead_elongation", "quality_report"]


def fourier_regions(shape: tuple[int, int, int], wedge: Wedge, low: float = 0.02,
                    high: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (rfftn layout) of the missing wedge and the measured region, ``low < |k| < high``."""
    nz, ny, nx = shape
    kz = np.fft.fftfreq(nz)[:, None, None]
    ky = np.fft.fftfreq(ny)[None, :, None]
    kx = np.fft.rfftfreq(nx)[None, None, :]
    r = np.sqrt(kz**2 + ky**2 + kx**2)
    band = (r > low) & (r < high)
    measured = wedge_mask_2d(nz, nx, wedge, rfft=True)[:, None, :] > 0.5
    rzx = np.sqrt(kz**2 + kx**2)
    # the (kz, kx) corners outside the inscribed circle count as unmeasured in the mask; leave them out
    in_circle = rzx <= 0.5
    missing = band & ~measured & in_circle
    return missing, band & measured


def fourier_correlation(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Normalised cross-correlation of the Fourier components of ``a`` and ``b`` inside ``region``."""
    fa = np.fft.rfftn(a - a.mean())[region]
    fb = np.fft.rfftn(b - b.mean())[region]
    denom = np.sqrt(np.sum(np.abs(fa) ** 2) * np.sum(np.abs(fb) ** 2)) + 1e-30
    return float(np.real(np.sum(fa * np.conj(fb))) / denom)


def real_space_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the voxels: insensitive to the scale and offset that normalisation changes."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def bead_elongation(volume: np.ndarray, labels: np.ndarray, bead_label: int = 5, window: int = 9) -> float:
    """Median Z/X extent ratio of the gold beads (1 = round; the missing wedge stretches them in Z).

    Extent = intensity-weighted standard deviation along Z and along X of the dark (bead) signal in a
    window around each bead centre, background removed at the window's median.
    """
    beads, count = ndimage.label(labels == bead_label)
    ratios = []
    for idx in range(1, count + 1):
        cz, cy, cx = (int(round(c)) for c in ndimage.center_of_mass(beads == idx))
        sl = tuple(slice(max(0, c - window), c + window + 1) for c in (cz, cy, cx))
        patch = -np.asarray(volume[sl], dtype=np.float64)  # beads are dark: make them positive
        patch = np.clip(patch - np.median(patch), 0, None)
        patch[patch < 0.3 * patch.max()] = 0
        if patch.sum() <= 0:
            continue
        zz, yy, xx = np.indices(patch.shape)
        w = patch / patch.sum()
        sz = np.sqrt(np.sum(w * (zz - np.sum(w * zz)) ** 2))
        sx = np.sqrt(np.sum(w * (xx - np.sum(w * xx)) ** 2))
        if sx > 0:
            ratios.append(sz / sx)
    return float(np.median(ratios)) if ratios else float("nan")


def quality_report(volume: np.ndarray, truth: np.ndarray, labels: np.ndarray | None, wedge: Wedge) -> dict:
    """Wedge and measured-region Fourier correlation, real-space correlation and bead roundness."""
    missing, measured = fourier_regions(truth.shape, wedge)
    report = {
        "fourier_corr_missing_wedge": fourier_correlation(volume, truth, missing),
        "fourier_corr_measured": fourier_correlation(volume, truth, measured),
        "real_space_corr": real_space_correlation(volume, truth),
    }
    if labels is not None:
        report["bead_z_over_x"] = bead_elongation(volume, labels)
    return report
