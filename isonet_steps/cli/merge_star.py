"""isonet merge-star: gather the per-tomogram STARs of a scattered run into one."""

import click

from ._common import option, step


@step("merge-star")
@click.argument("inputs", metavar="STAR...", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@option("-o", "--output-star", required=True, help="STAR file to write.")
@option("--relion5-folder", default=None,
        help="Tomogram rows from a RELION 5 project also give relion5_tomograms.star beside the output, naming the "
             "corrected tomograms in this folder (or URI).")
def command(inputs, output_star, relion5_folder):
    """Merge per-tomogram STARs: subtomogram STARs are concatenated in the order given and numbered anew;
    tomogram STARs are combined by rlnIndex (a cell set in any of them fills the row, e.g. both halves).
    """
    from ..steps.merge_star import run_merge_star

    run_merge_star(list(inputs), output_star, relion5_folder=relion5_folder)
