"""isonet prepare-star: a tomograms.star from a folder of tomograms or a RELION 5 tomograms.star."""

import click

from ._common import option, step, tomo_idx_option

_WEDGE_CHECKS = ["refuse", "flip", "warn", "off"]  # steps.prepare_star.WEDGE_CHECKS (not imported: --help stays fast)


def _given(name: str):
    """The option's value when given on the command line, else None (a tilt file or RELION then decides)."""
    ctx = click.get_current_context()
    return ctx.params[name] if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT else None


@step("prepare-star")
@click.argument("source", metavar="FOLDER_OR_STAR", type=click.Path(path_type=str))
@option("-o", "--output-star", default="tomograms.star", help="STAR file to write.")
@option("--pixel-size", type=float, default=10.0, help="Voxel size in Å written to every row (folders).")
@option("--defocus", type=float, default=0.0, help="Zero-tilt underfocus in Å (0: no CTF deconvolution; folders).")
@option("--number-subtomos", type=int, default=100, help="Subtomograms to extract per tomogram.")
@option("--tilt-min", type=float, default=-60.0,
        help="Lowest tilt angle of the tilt series, degrees (a <stem>.tlt beside a tomogram wins).")
@option("--tilt-max", type=float, default=60.0,
        help="Highest tilt angle of the tilt series, degrees (a <stem>.tlt beside a tomogram wins).")
@option("--named-in", default=None,
        help="Folder (or URI) written before each file name in rlnMicrographName instead of FOLDER, "
             "for a STAR naming tomograms where they live when FOLDER is a staged copy.")
@option("--wedge-check", type=click.Choice(_WEDGE_CHECKS), default="refuse",
        help="Check each tomogram's missing wedge against its data: refuse a mirrored one (with the fix), flip it "
             "(write the mirrored angles/range), warn only, or off (saves a few seconds per tomogram).")
@option("--relion-project", default=None, type=click.Path(file_okay=False, path_type=str),
        help="RELION project folder the STAR's paths start from [default: found above the STAR].")
@option("--tilt-folder", default=None,
        help="Folder (relative to the STAR's) for the .tlt files prepare-star writes, named relative to the STAR "
             "[default: tilt_angles/ beside the STAR, named by absolute path].")
@option("--check-data/--no-check-data", default=True,
        help="Read every tomogram to check its voxels and its wedge before anything is written; --no-check-data "
             "reads none (a dry run: the pipeline's -stub).")
@option("--fix-nonfinite", is_flag=True, default=False,
        help="Replace NaN/Inf voxels by the mean of the others (logged; every later step does the same) instead of "
             "refusing the tomogram.")
@option("--plan-folder", default=None,
        help="Also write the per-tomogram plan here: a one-row STAR per tomogram and plan.csv, which the "
             "workflows scatter over.")
@option("--train-idx", default=None, metavar="LIST",
        help="rlnIndex values whose subtomograms train the network, e.g. 1,2 (the plan's trains column). "
             " [default: --tomo-idx's]")
@tomo_idx_option()
@option("--predict-cube-size", type=int, default=None, help="With --predict-crop-size and --unet-depth: refuse "
        "predict tile sizes now that predict would refuse after refine.")
@option("--predict-crop-size", type=int, default=None, help="See --predict-cube-size.")
@option("--unet-depth", type=int, default=None, help="See --predict-cube-size.")
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
