"""isonet prepare-star: a tomograms.star from a folder of tomograms or a RELION 5 tomograms.star."""

import click

from ._common import option, param_options, step


def _given(name: str):
    """The option's value when given on the command line, else None (a tilt file or RELION then decides)."""
    ctx = click.get_current_context()
    return ctx.params[name] if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT else None


@step("prepare-star")
@click.argument("source", metavar="FOLDER_OR_STAR", type=click.Path(path_type=str))
@option("-o", "--output-star", default="tomograms.star", help="STAR file to write.")
@param_options("prepare_star")
@option("--named-in", default=None,
        help="Folder (or URI) written before each file name in rlnMicrographName instead of FOLDER, "
             "for a STAR naming tomograms where they live when FOLDER is a staged copy.")
@option("--relion-project", default=None, type=click.Path(file_okay=False, path_type=str),
        help="RELION project folder the STAR's paths start from [default: found above the STAR].")
@option("--tilt-folder", default=None,
        help="Folder (relative to the STAR's) for the .tlt files prepare-star writes, named relative to the STAR "
             "[default: tilt_angles/ beside the STAR, named by absolute path].")
@option("--check-data/--no-check-data", default=True,
        help="Read every tomogram to check its voxels and its wedge before anything is written; --no-check-data "
             "reads none (a dry run: the pipeline's -stub).")
@option("--plan-folder", default=None,
        help="Also write the per-tomogram plan here: a one-row STAR per tomogram and plan.csv, which the "
             "workflows scatter over.")
def command(source, output_star, pixel_size, defocus, number_subtomos, tilt_min, tilt_max, named_in, wedge_check,
            relion_project, tilt_folder, check_data, fix_nonfinite, plan_folder, train_idx, tomo_idx,
            predict_cube_size, predict_crop_size, unet_depth):
    """Write a tomograms.star listing every .mrc/.rec tomogram in a FOLDER, or the tomograms of a RELION 5
    Reconstruct job's tomograms.star (with their tilt angles, CTF and voxel size), or a copy of an IsoNet
    tomograms.star with its paths made absolute.
    """
    from ..steps.prepare_star import run_prepare_star

    run_prepare_star(source, output_star, pixel_size=pixel_size, defocus=defocus, number_subtomos=number_subtomos,
                     tilt_min=_given("tilt_min"), tilt_max=_given("tilt_max"), named_in=named_in,
                     wedge_check=wedge_check, project_dir=relion_project, tilt_folder=tilt_folder,
                     fix_nonfinite=fix_nonfinite, check_data=check_data, plan_folder=plan_folder,
                     train_idx=train_idx, tomo_idx=tomo_idx, predict_tiles=_tiles(predict_cube_size,
                                                                                  predict_crop_size, unet_depth))


def _tiles(cube: int | None, crop: int | None, depth: int | None) -> tuple[int, int, int] | None:
    """The predict tiles to check: all three options, or none."""
    if cube is None and crop is None and depth is None:
        return None
    if cube is None or crop is None or depth is None:
        from ..io.errors import InputError

        raise InputError("--predict-cube-size, --predict-crop-size and --unet-depth: give all three to check "
                         "predict's tiles, or none.")
    return cube, crop, depth
