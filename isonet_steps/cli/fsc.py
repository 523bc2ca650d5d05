"""isonet fsc: global and directional gold-standard FSC between two half tomograms."""

import click

from ._common import log_level_option, option, step


def _voxel_size(h1, h2, path1: str, path2: str, pixel_size):
    """The voxel size in Å: --pixel-size, else the headers (which must agree)."""
    from ..io.errors import InputError

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


def _write_json(path, payload) -> None:
    """Write JSON atomically (NaN refused: it is not JSON)."""
    from ..io.atomic import write_json

    write_json(path, payload, indent=1)


@step("fsc")
@click.argument("half1", type=str)
@click.argument("half2", type=str)
@option("-o", "--output", default="fsc.json", help="JSON file to write (curves and resolutions).")
@option("--mask", default=None, help="Mask MRC (same shape); both halves are multiplied by it, edge softened.")
@option("--mask-sigma", type=float, default=2.0, help="Gaussian softening of the mask edge, voxels (0: as given).")
@option("--pixel-size", type=float, default=None, help="Voxel size in Å  [default: from the MRC header]")
@option("--cone-angle", type=float, default=20.0,
        help="Half-angle of the cones around X/Y/Z and slabs around the planes, degrees.")
@option("--plot", default=None, help="Also draw the curves to this PNG file.")
@log_level_option()
def command(half1, half2, output, mask, mask_sigma, pixel_size, cone_angle, plot, log_level):
    """Fourier shell correlation of HALF1 and HALF2: globally, along X, Y, Z and on the XY/XZ/YZ planes.

    Reports the resolution where each curve first falls below 0.5 and 0.143 (Nyquist if never).
    The JSON holds frequency_per_A, fsc and n_voxels per direction (global, x, y, z, xy, xz, yz)
    and resolution_A {"0.5": {...}, "0.143": {...}} in Å.
    """
    import numpy as np

    from ..core.fsc import DIRECTIONS, fourier_shell_correlation
    from ..io.errors import InputError
    from ..io.log import get_logger, progress
    from ..io.mrc import read_header, read_volume
    from ..report.figures import fsc_figure

    log = get_logger()
    if mask_sigma < 0:
        raise InputError(f"--mask-sigma {mask_sigma:g} is negative; give the soft-edge width in voxels (0 = none).")
    h1, h2 = read_header(half1, "half tomogram"), read_header(half2, "half tomogram")
    if h1.shape != h2.shape:
        raise InputError(
            f"{half1} has shape {h1.shape} but {half2} has {h2.shape} (Z, Y, X); "
            "give two halves of the same tomogram at the same size and binning."
        )
    voxel = _voxel_size(h1, h2, half1, half2, pixel_size)
    if mask is not None:
        hm = read_header(mask, "mask")
        if hm.shape != h1.shape:
            raise InputError(
                f"{mask}: mask has shape {hm.shape} but the halves {h1.shape} (Z, Y, X); "
                "give a mask made for these halves (same size and binning)."
            )
        if hm.voxel_size > 0 and abs(hm.voxel_size - voxel) > 0.01 * voxel:
            log.warning("%s: mask voxel size %.4g Å differs from %.4g Å; using it anyway (same shape)",
                        mask, hm.voxel_size, voxel)
    if not 0.0 < cone_angle < 90.0:
        raise InputError(f"--cone-angle {cone_angle:g} must lie between 0 and 90 degrees; 20 is usual.")

    mask_data = None
    if mask is not None:
        mask_data = read_volume(mask, "mask", allow_constant=True).data
        if not (mask_data > 0).any():
            raise InputError(f"{mask}: mask is empty (no voxel above 0); give a mask that covers the sample.")
    a = read_volume(half1, "half tomogram").data
    b = read_volume(half2, "half tomogram").data
    log.info("FSC of %s and %s: shape %s, voxel %.4g Å, cone %.4g°%s", half1, half2, a.shape, voxel,
             cone_angle, f", mask {mask}" if mask else "")
    result = fourier_shell_correlation(
        a, b, voxel, mask=mask_data, mask_sigma=mask_sigma, cone_angle=cone_angle,
        overwrite_input=True, progress=progress,
    )
    del a, b, mask_data

    payload = {
        "half1": str(half1),
        "half2": str(half2),
        "mask": None if mask is None else str(mask),
        "mask_sigma_voxels": float(mask_sigma) if mask is not None else None,
        **result.to_dict(),
    }
    try:
        _write_json(output, payload)
    except OSError as exc:
        raise InputError(f"{output}: cannot write the JSON ({exc.strerror}); choose a writable location.") from None
    for key, per in result.resolution.items():
        log.info("FSC %s: %s", key, ", ".join(
            f"{d} {per[d]:.1f} Å" if np.isfinite(per[d]) else f"{d} n/a" for d in DIRECTIONS))
    log.info("wrote %s", output)
    if plot:
        from ..io.atomic import write_bytes
        from ..report.plots import figure_png

        try:
            write_bytes(plot, figure_png(fsc_figure(result)))
        except OSError as exc:
            raise InputError(f"{plot}: cannot write the plot ({exc.strerror}); choose a writable location.") from None
        log.info("wrote %s", plot)
