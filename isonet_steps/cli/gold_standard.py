"""isonet gold-standard: correct each tomogram with both half networks, then their directional FSC."""

import click

from ._common import log_level_option, option, param_options, step


@step("gold-standard")
@click.argument("tomo_star", type=click.Path(dir_okay=False, path_type=str))
@option("--result-dir", default="results", help="Refine folder holding half1/ and half2/ (refine --halves).")
@option("--output-dir", default="gold_standard", help="Folder for the corrected halves, FSC JSON and plots.")
@param_options("gold_standard")
@option("--mask", default=None, help="FSC mask for every tomogram [default: the row's rlnMaskName, else none].")
@option("--average/--no-average", default=True,
        help="Also write the mean of the two corrected halves as rlnCorrectedTomoName.")
@option("--output-star", default=None, help="STAR file to write [default: update TOMO_STAR in place].")
@log_level_option()
def command(tomo_star, result_dir, output_dir, cube_size, crop_size, batch_size, mask, cone_angle, average,
            use_deconv_tomo, output_star, precision, gpus, tomo_idx, log_level):
    """Gold-standard resolution of TOMO_STAR's tomograms from two independently trained networks.

    Predicts every tomogram with result-dir/half1 and half2 models, computes the global and
    directional FSC between the two corrected tomograms (and, where the STAR names RELION 5
    even/odd half tomograms, between the raw halves and between their corrected versions), and
    records rlnCorrectedTomoHalf1/2 and rlnGoldStandardFsc in the STAR file.
    """
    from ..steps.gold_standard import run_gold_standard

    run_gold_standard(tomo_star, result_dir, output_dir, cube_size=cube_size, crop_size=crop_size,
                      batch_size=batch_size, mask=mask, cone_angle=cone_angle, average=average,
                      use_deconv_tomo=use_deconv_tomo, output_star=output_star, precision=precision, gpus=gpus,
                      tomo_idx=tomo_idx)
