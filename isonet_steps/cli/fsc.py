"""isonet fsc: global and directional gold-standard FSC between two half tomograms."""

import click

from ._common import log_level_option, option, param_options, step


@step("fsc")
@click.argument("half1", type=str)
@click.argument("half2", type=str)
@option("-o", "--output", default="fsc.json", help="JSON file to write (curves and resolutions).")
@option("--mask", default=None, help="Mask MRC (same shape); both halves are multiplied by it, edge softened.")
@option("--mask-sigma", type=float, default=2.0, help="Gaussian softening of the mask edge, voxels (0: as given).")
@param_options("fsc")
@option("--plot", default=None, help="Also draw the curves to this PNG file.")
@option("--tilt-angles", default=None,
        help="The series' tilt-angle file (.tlt, one angle per line): adds the measured/missing-wedge curves, "
             "gaps in the series counted as missing.")
@log_level_option()
def command(half1, half2, output, mask, mask_sigma, pixel_size, cone_angle, plot, tilt_min, tilt_max, tilt_angles,
            log_level):
    """Fourier shell correlation of HALF1 and HALF2: globally, along X, Y, Z and on the XY/XZ/YZ planes.

    Reports the resolution where each curve first falls below 0.5 and 0.143 (Nyquist if never).
    The JSON holds frequency_per_A, fsc and n_voxels per direction (global, x, y, z, xy, xz, yz)
    and resolution_A {"0.5": {...}, "0.143": {...}} in Å. Given the tilt range (--tilt-min/--tilt-max) or
    angles (--tilt-angles), two more curves split Fourier space by the missing wedge: measured (directions
    the tilt series recorded) and wedge (those it did not).
    """
    from ..steps.fsc import run_fsc

    run_fsc(half1, half2, output, mask=mask, mask_sigma=mask_sigma, pixel_size=pixel_size, cone_angle=cone_angle,
            plot=plot, tilt_min=tilt_min, tilt_max=tilt_max, tilt_angles=tilt_angles)
