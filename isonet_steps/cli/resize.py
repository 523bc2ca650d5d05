"""isonet resize: rescale the tomograms of a STAR file to another voxel size."""

import click

from ._common import log_level_option, option, step


@step("resize")
@click.argument("star", type=click.Path(dir_okay=False, path_type=str))
@option("--pixel-size-out", "--apix", "pixel_size_out", type=float, default=15.0,
        help="Voxel size of the rescaled tomograms, in Å.")
@option("--out-folder", default="tomograms_resized", help="Folder for the rescaled tomograms (same file names).")
@option("--output-star", default=None, help="STAR file to write.  [default: <STAR stem>_resized.star beside STAR]")
@log_level_option()
def command(star, pixel_size_out, out_folder, output_star, log_level):
    """Rescale every tomogram in STAR to --pixel-size-out Å (cubic spline) and write a new STAR.

    The new STAR has the new rlnPixelSize and rlnMicrographName; rlnDeconvTomoName and
    rlnMaskName are reset to None because those files still have the old size.
    """
    from ..steps.resize import run_resize

    run_resize(star, pixel_size_out=pixel_size_out, out_folder=out_folder, output_star=output_star)
