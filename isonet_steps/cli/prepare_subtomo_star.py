"""isonet prepare-subtomo-star: a subtomo.star for subtomograms cut by other software."""

import click

from ._common import log_level_option, option, step


@step("prepare-subtomo-star")
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@option("-o", "--output-star", default="subtomo.star", help="Subtomogram STAR file to write.")
@option("--pixel-size", type=float, default=10.0, help="Voxel size in Å written to every row.")
@option("--cube-size", type=int, default=None,
        help="Training cube edge in voxels (multiple of 8, at most the subtomogram size).  "
             "[default: IsoNet's rule, floor(int(crop/1.5 + 1)/16)*16, e.g. 96 -> 64]")
@option("--tilt-min", type=float, default=-60.0, help="Lowest tilt angle of the tilt series, degrees.")
@option("--tilt-max", type=float, default=60.0, help="Highest tilt angle of the tilt series, degrees.")
@log_level_option()
def command(folder, output_star, pixel_size, cube_size, tilt_min, tilt_max, log_level):
    """Write a subtomo.star listing every readable cubic MRC in FOLDER (sorted by name).

    Unreadable or non-cubic files are skipped with a warning; all subtomograms must share one size.
    """
    from ..steps.prepare_subtomo_star import run_prepare_subtomo_star

    run_prepare_subtomo_star(folder, output_star, pixel_size=pixel_size, cube_size=cube_size, tilt_min=tilt_min,
                             tilt_max=tilt_max)
