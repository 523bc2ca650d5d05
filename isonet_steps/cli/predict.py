"""isonet predict: correct whole tomograms with a trained network."""

import click

from ._common import log_level_option, option, param_options, step


@step("predict")
@click.argument("tomo_star", type=click.Path(dir_okay=False, path_type=str))
@click.argument("model", type=click.Path(path_type=str))
@option("--output-dir", default="corrected_tomos", help="Folder for the corrected tomograms.")
@param_options("predict")
@option("--half", type=click.Choice(["1", "2"]), default=None,
        help="Gold-standard half: write <name>_half1_corrected.mrc and fill rlnCorrectedTomoHalf1 (or 2).")
@option("--correct-halves/--no-correct-halves", default=False,
        help="Also correct each row's raw halves (rlnTomoReconstructedTomogramHalf1/2) with the same network into "
             "rlnCorrectedTomoHalf1/2, for the report's map of where they disagree (isonet run --noise2noise sets it).")
@option("--output-star", default=None, help="STAR file to write [default: update TOMO_STAR in place].")
@option("--relion5-folder", default=None,
        help="For rows from a RELION 5 project: the folder (or URI) named before each corrected file in "
             "OUTPUT_DIR/relion5_tomograms.star [default: where they are written].")
@log_level_option()
def command(tomo_star, model, output_dir, cube_size, crop_size, batch_size, tomo_idx, use_deconv_tomo, half,
            correct_halves, output_star, precision, gpus, relion5_folder, log_level):
    """Correct the tomograms of TOMO_STAR with the network in MODEL (.keras) and record them in the STAR file."""
    from ..steps.predict import run_predict

    run_predict(tomo_star, model, output_dir=output_dir, cube_size=cube_size, crop_size=crop_size,
                batch_size=batch_size, tomo_idx=tomo_idx, use_deconv_tomo=use_deconv_tomo,
                half=int(half) if half else None, output_star=output_star, precision=precision, gpus=gpus,
                relion5_folder=relion5_folder, correct_halves=correct_halves)
