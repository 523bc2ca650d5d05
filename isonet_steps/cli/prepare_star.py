"""isonet prepare-star: a tomograms.star from a folder of tomograms."""

import click

from ._common import option, step


@step("prepare-star")
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@option("-o", "--output-star", default="tomograms.star", help="STAR file to write.")
@option("--pixel-size", type=float, default=10.0, help="Voxel size in Å written to every row.")
@option("--defocus", type=float, default=0.0, help="Zero-tilt underfocus in Å (0: no CTF deconvolution).")
@option("--number-subtomos", type=int, default=100, help="Subtomograms to extract per tomogram.")
@option("--tilt-min", type=float, default=-60.0, help="Lowest tilt angle of the tilt series, degrees.")
@option("--tilt-max", type=float, default=60.0, help="Highest tilt angle of the tilt series, degrees.")
@option("--named-in", default=None,
        help="Folder (or URI) written before each file name in rlnMicrographName instead of FOLDER, "
             "for a STAR naming tomograms where they live when FOLDER is a staged copy.")
def command(folder, output_star, pixel_size, defocus, number_subtomos, tilt_min, tilt_max, named_in):
    """Write a tomograms.star listing every .mrc/.rec tomogram in FOLDER."""
    from ..steps.prepare_star import run_prepare_star

    run_prepare_star(folder, output_star, pixel_size=pixel_size, defocus=defocus, number_subtomos=number_subtomos,
                     tilt_min=tilt_min, tilt_max=tilt_max, named_in=named_in)
