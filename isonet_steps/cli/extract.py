"""isonet extract: cut training subtomograms at random places of each tomogram's mask."""

import click

from ..core.extract import SPLITS
from ._common import log_level_option, option, param_options, step


@step("extract")
@click.argument("star", type=click.Path(dir_okay=False, path_type=str))
@option("--subtomo-folder", default="subtomo",
        help="Folder for the subtomogram MRCs. Existing files are kept, except stale <tomogram>_NNNNNN.mrc of this "
             "run's tomograms.")
@option("--subtomo-star", default="subtomo.star",
        help="Subtomogram STAR file to write (last, when all MRCs are written).")
@param_options("extract")
@option("--split-halves", type=click.Choice(list(SPLITS)), default="random",
        help="Gold-standard halves: random (boxes of the two halves may overlap) or slabs (each half draws "
             "from its own alternating slabs, 2·crop wide along X: no shared voxel; refine --halves wants this).")
@option("--first-half", type=click.IntRange(1, 2), default=None,
        help="Half that gets the odd subtomogram out, for a one-tomogram STAR of a plan (its first_half column). "
             " [default: balanced over the STAR's tomograms]")
@log_level_option()
def command(star, subtomo_folder, subtomo_star, cube_size, crop_size, seed, use_deconv_tomo, split_halves, noise2noise,
            first_half, tomo_idx, log_level):
    """Extract subtomograms from the tomograms in STAR (rlnNumberSubtomo per row) into subtomo.star.

    Centres are drawn without replacement among the mask's voxels whose whole crop box lies inside
    the tomogram; the same --seed gives the same subtomograms. A mask with fewer such voxels than
    rlnNumberSubtomo is an error (IsoNet would repeat centres). Each subtomogram is assigned to one
    of two balanced random halves (rlnRandomSubset 1/2) for the gold-standard resolution estimate.
    """
    from ..steps.extract import run_extract

    run_extract(star, subtomo_folder=subtomo_folder, subtomo_star=subtomo_star, cube_size=cube_size,
                crop_size=crop_size, seed=seed, use_deconv_tomo=use_deconv_tomo, split_halves=split_halves,
                tomo_idx=tomo_idx, noise2noise=noise2noise, first_half=first_half)
