"""Small inputs shared by the deconv / make-mask / resize tests (not a conftest: imported explicitly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import starfile
from scipy import ndimage

from isonet_steps.io.mrc import write_volume


def blobs_and_sheets(shape=(32, 64, 64), seed: int = 0, noise: float = 0.5):
    """Dark Gaussian blobs, a dark tilted sheet and a dark rod in noise; returns (volume, truth).

    ``truth`` is True where a structure is (before noise and blurring).
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    truth = np.zeros(shape, bool)
    zz, yy, xx = np.indices(shape)
    half_x = xx < nx // 2  # structures live in the left half; the right half is empty "ice"
    for _ in range(6):
        c = (rng.uniform(0.3, 0.7) * nz, rng.uniform(0.15, 0.85) * ny, rng.uniform(0.1, 0.4) * nx)
        truth |= (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= 2.5**2
    sheet = np.abs((zz - nz / 2) * 0.8 + (xx - nx / 4) * 0.6) <= 1.0
    truth |= sheet & half_x & (np.abs(yy - ny / 2) < ny / 3)
    rod = ((zz - nz / 2) ** 2 + (xx - 0.3 * nx) ** 2 <= 1.5**2) & (np.abs(yy - ny / 2) < ny / 3)
    truth |= rod
    density = -ndimage.gaussian_filter(truth.astype(np.float32), 1.0) * 3.0
    volume = density + noise * rng.standard_normal(shape).astype(np.float32)
    return volume.astype(np.float32), truth


def write_tomo(path: Path, data: np.ndarray, voxel_size: float = 10.0, dtype=np.float32) -> Path:
    return write_volume(path, data, voxel_size, dtype=dtype)


def write_star(path: Path, rows: list[dict]) -> Path:
    """A tomograms.star with IsoNet's first columns filled by default, then ``rows``' own values."""
    full = []
    for i, row in enumerate(rows, start=1):
        base = {"rlnIndex": i, "rlnMicrographName": "", "rlnPixelSize": 10.0, "rlnDefocus": 30000.0,
                "rlnNumberSubtomo": 10, "rlnMaskBoundary": "None"}
        base.update({k: (str(v) if isinstance(v, Path) else v) for k, v in row.items()})
        full.append(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    starfile.write(pd.DataFrame(full), path, overwrite=True)
    return path


def read_star(path: Path) -> pd.DataFrame:
    return starfile.read(path)
