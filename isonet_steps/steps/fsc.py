"""fsc: global and directional Fourier shell correlation between two half tomograms, to a JSON file.

Given ``plot``, the curves are also drawn to a PNG (:mod:`isonet_steps.figures.fsc`, the figure the
report shows), written atomically.
Given the tomogram's tilt range or angles, the FSC is also split by its missing wedge ("measured"
and "wedge" curves, :mod:`isonet_steps.core.fsc`).
"""

from __future__ import annotations

import os

import numpy as np

from ..core.fsc import FSCResult, fourier_shell_correlation
from ..core.wedge import Wedge
from ..io.atomic import write_bytes, write_json
from ..io.errors import InputError
from ..io.log import get_logger, progress
from ..io.mrc import Header, read_header, read_volume
from ..io.params import default
from .row_wedge import wedge_from_file


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


def _write(output, plot, payload: dict, result: FSCResult) -> None:
    log = get_logger()
    try:
        write_json(output, payload, indent=1)  # NaN is refused: it is not JSON
    except OSError as exc:
        raise InputError(f"{output}: cannot write the JSON ({exc.strerror}); choose a writable location.") from None
    for key, per in result.resolution.items():
        log.info("FSC %s: %s", key, ", ".join(
            f"{d} {per[d]:.1f} Å" if np.isfinite(per[d]) else f"{d} n/a" for d in result.directions))
    log.info("wrote %s", output)
    if plot:
        from ..figures.fsc import fsc_png  # matplotlib loads only for a plot

        try:
            write_bytes(plot, fsc_png(result))
        except OSError as exc:
            raise InputError(f"{plot}: cannot write the plot ({exc.strerror}); choose a writable location.") from None
        log.info("wrote %s", plot)


def option_wedge(tilt_min: float | None, tilt_max: float | None, tilt_angles: str | os.PathLike | None) -> Wedge | None:
    """The wedge of ``--tilt-min/--tilt-max`` or ``--tilt-angles`` (None without them); one-line errors."""
    if tilt_angles is not None:
        if tilt_min is not None or tilt_max is not None:
            raise InputError(f"--tilt-angles {tilt_angles} and --tilt-min/--tilt-max both given; give the angles file "
                             "(it knows the range and any gaps) or the range, not both.")
        return wedge_from_file(tilt_angles)
    if tilt_min is None and tilt_max is None:
        return None
    if tilt_min is None or tilt_max is None:
        raise InputError("--tilt-min and --tilt-max go together; give both ends of the tilt range (e.g. -60 and 60), "
                         "or neither.")
    if not -90.0 <= tilt_min < tilt_max <= 90.0:
        raise InputError(f"tilt range --tilt-min {tilt_min:g} --tilt-max {tilt_max:g} must rise within ±90 degrees; "
                         "give the series' lowest and highest tilt angle, e.g. -60 and 60.")
    return Wedge.from_range(tilt_min, tilt_max)


def run_fsc(half1: str | os.PathLike, half2: str | os.PathLike, output: str | os.PathLike = "fsc.json", *,
            mask: str | os.PathLike | None = None, mask_sigma: float = 2.0, pixel_size: float | None = None,
            cone_angle: float = default("cone_angle"), plot: str | os.PathLike | None = None,
            wedge: Wedge | None = None, tilt_min: float | None = None, tilt_max: float | None = None,
            tilt_angles: str | os.PathLike | None = None) -> dict:
    """FSC of two halves (optionally masked) written to ``output`` as JSON; returns what the JSON holds.

    ``plot``: also draw the curves to this PNG file.
    ``wedge`` (or ``tilt_min`` and ``tilt_max``, or a ``tilt_angles`` file): the tomogram's missing
    wedge, which adds the "measured" and "wedge" curves.
    """
    voxel = _check_inputs(half1, half2, mask, mask_sigma, pixel_size, cone_angle)
    given = option_wedge(tilt_min, tilt_max, tilt_angles)
    if wedge is not None and given is not None:
        raise ValueError("run_fsc: give wedge or tilt_min/tilt_max/tilt_angles, not both")
    wedge = wedge or given
    mask_data = _read_mask(mask)
    a = read_volume(half1, "half tomogram").data
    b = read_volume(half2, "half tomogram").data
    get_logger().info("FSC of %s and %s: shape %s, voxel %.4g Å, cone %.4g°%s%s", half1, half2, a.shape, voxel,
                      cone_angle, f", mask {mask}" if mask else "",
                      f", wedge {wedge.describe()}" if wedge is not None else "")
    result = fourier_shell_correlation(a, b, voxel, mask=mask_data, mask_sigma=mask_sigma, cone_angle=cone_angle,
                                       overwrite_input=True, wedge=wedge, progress=progress)
    del a, b, mask_data
    payload = {
        "half1": str(half1),
        "half2": str(half2),
        "mask": None if mask is None else str(mask),
        "mask_sigma_voxels": float(mask_sigma) if mask is not None else None,
        **({"tilt_angles": str(tilt_angles)} if tilt_angles is not None else {}),
        **result.to_dict(),
    }
    _write(output, plot, payload, result)
    return payload
