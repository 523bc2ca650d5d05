"""fsc: global and directional Fourier shell correlation between two half tomograms, to a JSON file.

Drawing the curves is the report layer's (matplotlib), above this one: a caller that wants the PNG
passes ``draw_plot``, a function from the result to PNG bytes, and this step writes it atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..core.fsc import DIRECTIONS, FSCResult, fourier_shell_correlation
from ..io.atomic import write_bytes, write_json
from ..io.errors import InputError
from ..io.log import get_logger, progress
from ..io.mrc import Header, read_header, read_volume

#: Renders an FSC result as PNG bytes (``report.figures`` provides one; the CLI passes it in).
DrawPlot = Callable[[FSCResult], bytes]


def _voxel_size(h1: Header, h2: Header, path1, path2, pixel_size: float | None) -> float:
    """The voxel size in Å: --pixel-size, else the headers (which must agree)."""
    known = [v for v in (h1.voxel_size, h2.voxel_size) if v > 0]
    if pixel_size is not None:
        if not pixel_size > 0:
            raise InputError(f"--pixel-size {pixel_size:g} is not a positive size in Å; give the voxel size, e.g. 10.")
        return float(pixel_size)
    if len(known) == 2 and abs(known[0] - known[1]) > 1e-3 * max(known):
        raise InputError(
            f"{path1} has voxel size {h1.voxel_size:g} Å but {path2} has {h2.voxel_size:g} Å; "
            "give two halves at the same binning (or --pixel-size to override both headers)."
        )
    if not known:
        raise InputError(f"{path1}: the MRC header gives no voxel size; give it with --pixel-size (Å).")
    return known[0]


def _check_inputs(half1, half2, mask, mask_sigma: float, pixel_size: float | None, cone_angle: float) -> float:
    """Shapes, voxel sizes and settings, from the headers alone; returns the voxel size in Å."""
    if mask_sigma < 0:
        raise InputError(f"--mask-sigma {mask_sigma:g} is negative; give the soft-edge width in voxels (0 = none).")
    h1, h2 = read_header(half1, "half tomogram"), read_header(half2, "half tomogram")
    if h1.shape != h2.shape:
        raise InputError(f"{half1} has shape {h1.shape} but {half2} has {h2.shape} (Z, Y, X); "
                         "give two halves of the same tomogram at the same size and binning.")
    voxel = _voxel_size(h1, h2, half1, half2, pixel_size)
    if mask is not None:
        hm = read_header(mask, "mask")
        if hm.shape != h1.shape:
            raise InputError(f"{mask}: mask has shape {hm.shape} but the halves {h1.shape} (Z, Y, X); "
                             "give a mask made for these halves (same size and binning).")
        if hm.voxel_size > 0 and abs(hm.voxel_size - voxel) > 0.01 * voxel:
            get_logger().warning("%s: mask voxel size %.4g Å differs from %.4g Å; using it anyway (same shape)",
                                 mask, hm.voxel_size, voxel)
    if not 0.0 < cone_angle < 90.0:
        raise InputError(f"--cone-angle {cone_angle:g} must lie between 0 and 90 degrees; 20 is usual.")
    return voxel


def _read_mask(mask) -> np.ndarray | None:
    if mask is None:
        return None
    data = read_volume(mask, "mask", allow_constant=True).data
    if not (data > 0).any():
        raise InputError(f"{mask}: mask is empty (no voxel above 0); give a mask that covers the sample.")
    return data


def _write(output, plot, payload: dict, result: FSCResult, draw_plot: DrawPlot | None) -> None:
    log = get_logger()
    try:
        write_json(output, payload, indent=1)  # NaN is refused: it is not JSON
    except OSError as exc:
        raise InputError(f"{output}: cannot write the JSON ({exc.strerror}); choose a writable location.") from None
    for key, per in result.resolution.items():
        log.info("FSC %s: %s", key, ", ".join(
            f"{d} {per[d]:.1f} Å" if np.isfinite(per[d]) else f"{d} n/a" for d in DIRECTIONS))
    log.info("wrote %s", output)
    if plot and draw_plot is not None:
        try:
            write_bytes(plot, draw_plot(result))
        except OSError as exc:
            raise InputError(f"{plot}: cannot write the plot ({exc.strerror}); choose a writable location.") from None
        log.info("wrote %s", plot)


def run_fsc(half1: str | os.PathLike, half2: str | os.PathLike, output: str | os.PathLike = "fsc.json", *,
            mask: str | os.PathLike | None = None, mask_sigma: float = 2.0, pixel_size: float | None = None,
            cone_angle: float = 20.0, plot: str | os.PathLike | None = None,
            draw_plot: DrawPlot | None = None) -> dict:
    """FSC of two halves (optionally masked) written to ``output`` as JSON; returns what the JSON holds.

    ``plot``: also write the curves there, drawn by ``draw_plot`` (required with ``plot``).
    """
    if plot and draw_plot is None:
        raise ValueError("run_fsc: a plot needs draw_plot (the report layer draws the figure)")
    voxel = _check_inputs(half1, half2, mask, mask_sigma, pixel_size, cone_angle)
    mask_data = _read_mask(mask)
    a = read_volume(half1, "half tomogram").data
    b = read_volume(half2, "half tomogram").data
    get_logger().info("FSC of %s and %s: shape %s, voxel %.4g Å, cone %.4g°%s", half1, half2, a.shape, voxel,
                      cone_angle, f", mask {mask}" if mask else "")
    result = fourier_shell_correlation(a, b, voxel, mask=mask_data, mask_sigma=mask_sigma, cone_angle=cone_angle,
                                       overwrite_input=True, progress=progress)
    del a, b, mask_data
    payload = {
        "half1": str(half1),
        "half2": str(half2),
        "mask": None if mask is None else str(mask),
        "mask_sigma_voxels": float(mask_sigma) if mask is not None else None,
        **result.to_dict(),
    }
    _write(output, plot, payload, result, draw_plot)
    return payload
