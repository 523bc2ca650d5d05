"""isonet make-mask: sample masks (dense and structured regions) for the tomograms in a STAR file."""

import click

from ._common import log_level_option, option, param_options, step


@step("make-mask")
@click.argument("star", type=click.Path(dir_okay=False, path_type=str))
@option("--mask-folder", default="mask", help="Folder for the masks (<tomogram name>_mask.mrc, int8 0/1).")
@param_options("make_mask")
@option("--output-star", default=None, help="STAR file to write.  [default: rewrite STAR in place]")
@log_level_option()
def command(star, mask_folder, density_percentage, std_percentage, z_crop, patch_size, use_deconv_tomo,
            tomo_idx, output_star, log_level):
    """Make a sample mask for each tomogram in STAR and record it in rlnMaskName.

    A voxel is kept when it is near dense (dark) material and has a high local standard
    deviation, both judged on a 2x-binned, smoothed copy. Also fills rlnMaskDensityPercentage
    and rlnMaskStdPercentage.

    rlnMaskBoundary may name an IMOD binary model (.mod, read directly: no IMOD install needed)
    drawn on the tomogram: its points are a polygon in XY; if the last two points lie 10 or more
    sections apart in Z they give the Z range instead. Only voxels inside both are kept.
    """
    from ..steps.make_mask import run_make_mask

    run_make_mask(star, mask_folder=mask_folder, density_percentage=density_percentage, std_percentage=std_percentage,
                  z_crop=z_crop, patch_size=patch_size, use_deconv_tomo=use_deconv_tomo, tomo_idx=tomo_idx,
                  output_star=output_star)
