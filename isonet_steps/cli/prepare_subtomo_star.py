"""isonet prepare-subtomo-star: a subtomo.star for subtomograms cut by other software."""

import click

from ._common import log_level_option, option, param_options, step


@step("prepare-subtomo-star")
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@option("-o", "--output-star", default="subtomo.star", help="Subtomogram STAR file to write.")
@param_options("prepare_subtomo_star")
@log_level_option()
def command(folder, output_star, pixel_size, cube_size, tilt_min, tilt_max, log_level):
    """Write a subtomo.star listing every readable cubic MRC in FOLDER (sorted by name).

    Unreadable or non-cubic files are skipped with a warning; all subtomograms must share one size.
    """
    from ..steps.prepare_subtomo_star import run_prepare_subtomo_star

    run_prepare_subtomo_star(folder, output_star, pixel_size=pixel_size, cube_size=cube_size, tilt_min=tilt_min,
                             tilt_max=tilt_max)
