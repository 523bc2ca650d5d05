"""make-phantom: a synthetic tomogram with its ground truth and labels, for trying the pipeline."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..core.phantom import make_phantom
from ..io.atomic import check_writable_target
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.mrc import write_volume
from ..io.params import default


def run_make_phantom(outdir: str | os.PathLike, *, shape: tuple[int, int, int] = (64, 160, 160),
                     tilt_min: float = default("tilt_min"), tilt_max: float = default("tilt_max"),
                     tilt_step: float = 3.0, snr: float = 0.5, seed: int = default("seed"), halves: bool = False,
                     pixel_size: float = default("pixel_size")) -> Path:
    """Write tomo.mrc, ground_truth.mrc and labels.mrc (and the even/odd halves) into ``outdir``; returns it."""
    log = get_logger("make-phantom")
    if seed < 0:
        raise InputError(f"--seed {seed} must be >= 0.")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; give a folder for the phantom files.")
    check_writable_target(out / "tomo.mrc")
    start = time.perf_counter()
    phantom = make_phantom(shape, tilt_min=tilt_min, tilt_max=tilt_max, tilt_step=tilt_step, snr=snr, seed=seed,
                           pixel_size=pixel_size, halves=halves)
    log.info("simulated %s phantom (tilts %g..%g step %g, SNR %g) in %.1f s", "x".join(map(str, shape)),
             tilt_min, tilt_max, tilt_step, snr, time.perf_counter() - start)
    write_volume(out / "tomo.mrc", phantom.tomogram, phantom.pixel_size)
    write_volume(out / "ground_truth.mrc", phantom.ground_truth, phantom.pixel_size)
    write_volume(out / "labels.mrc", phantom.labels, phantom.pixel_size, dtype=np.int8)
    if halves:
        assert phantom.half1 is not None and phantom.half2 is not None  # make_phantom(halves=True) made both
        write_volume(out / "tomo_half1.mrc", phantom.half1, phantom.pixel_size)
        write_volume(out / "tomo_half2.mrc", phantom.half2, phantom.pixel_size)
    log.info("wrote %s, %s, %s%s", out / "tomo.mrc", out / "ground_truth.mrc", out / "labels.mrc",
             " and the two half tomograms" if halves else "")
    return out
