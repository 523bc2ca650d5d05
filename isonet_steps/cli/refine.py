"""isonet refine: train the missing-wedge-correction network on extracted subtomograms."""

import click

from ._common import log_level_option, option, precision_option, step


def _number_list(cast, example: str):
    """Click callback: "0.05,0.1" -> (0.05, 0.1) with ``cast`` applied to each item."""

    def parse(ctx, param, value):
        if value is None:
            return None
        try:
            return tuple(cast(v) for v in str(value).replace(" ", "").split(",") if v != "")
        except ValueError:
            kind = "numbers" if cast is float else "whole numbers"
            raise click.BadParameter(f"{value!r} is not a comma-separated list of {kind}, e.g. {example}") from None

    return parse


_floats = _number_list(float, "0.05,0.1")
_ints = _number_list(int, "11,16")


@step("refine")
@click.argument("subtomo_star", type=click.Path(dir_okay=False, path_type=str))
@option("--result-dir", default="results", help="Folder for models, checkpoints and the log.")
@option("--iterations", type=int, default=30, help="Refinement iterations.")
@option("--epochs", type=int, default=10, help="Epochs per iteration.")
@option("--early-stop-patience", type=int, default=0,
        help="Stop an iteration's epochs after this many without a 1 % gain in validation loss; 0: train all epochs.")
@option("--steps-per-epoch", type=int, default=None, help="Training steps per epoch [default: min(6·N/batch, 200)].")
@option("--batch-size", type=int, default=None, help="Pairs per training step [default: max(4, 2 per GPU)].")
@option("--filter-base", type=int, default=64, help="Filters of the first U-Net level.")
@option("--unet-depth", type=int, default=3, help="U-Net levels.")
@option("--convs-per-depth", type=int, default=3, help="Convolutions per U-Net level.")
@option("--kernel", type=int, default=3, help="Convolution kernel edge.")
@option("--dropout", "--drop-out", "dropout", type=float, default=0.3, help="Dropout rate.")
@option("--batch-norm/--no-batch-norm", default=True, help="Batch normalisation in conv blocks.")
@option("--learning-rate", type=float, default=4e-4, help="Adam learning rate (fresh optimiser each iteration).")
@option("--fill-relaxation", type=float, default=1.0,
        help="Weight of an iteration's new predictions in the missing-wedge fill the next trains on; "
             "1: IsoNet (new alone).")
@option("--noise-level", callback=_floats, default="0.05,0.1,0.15,0.2",
        help="Noise levels (ratio to data), comma-separated.")
@option("--noise-start-iter", callback=_ints, default="11,16,21,26", help="Iteration where each noise level starts.")
@option("--noise-mode", type=click.Choice(["noFilter", "ramp", "hamming"]), default="noFilter",
        help="Back-projection filter of the noise.")
@option("--select-subtomo-number", type=int, default=None,
        help="Train on this many randomly chosen subtomograms per iteration.")
@option("--pretrained-model", type=click.Path(dir_okay=False, path_type=str), default=None,
        help="Start from this .keras model.")
@option("--continue/--no-continue", "resume", default=True,
        help="Continue after the last finished iteration in --result-dir "
             "(--no-continue sets an old run aside as <dir>~).")
@option("--until-iter", type=int, default=None, help="Stop after this iteration (one-iteration tasks in Nextflow).")
@option("--halves/--no-halves", default=False,
        help="Train one network per rlnRandomSubset half (result-dir/half1, half2).")
@option("--half", type=click.IntRange(1, 2), default=None,
        help="Train only this rlnRandomSubset half's network, into --result-dir itself: the two halves of --halves "
             "as two independent runs (Nextflow runs them side by side).")
@option("--noise2noise/--no-noise2noise", default=False,
        help="Train each box of one raw half tomogram to predict the same box of the other (rlnImageNameHalf2, "
             "from extract --noise2noise) instead of adding noise.")
@option("--seed", type=int, default=0, help="Random seed: same seed, same result.")
@precision_option()
@option("--gpus", default=None, help="GPU ids, e.g. 0,1; 'cpu' for CPU only [default: every visible GPU].")
@option("--ncpus", type=int, default=None, help="CPU threads [default: all cores].")
@log_level_option()
def command(subtomo_star, result_dir, iterations, epochs, steps_per_epoch, batch_size, filter_base, unet_depth,
            convs_per_depth, kernel, dropout, batch_norm, learning_rate, noise_level, noise_start_iter, noise_mode,
            select_subtomo_number, pretrained_model, resume, until_iter, halves, half, noise2noise, seed, precision,
            gpus, ncpus, log_level, early_stop_patience, fill_relaxation):
    """Train the network on the subtomograms of SUBTOMO_STAR, iteration by iteration."""
    from ..network.devices import configure

    configure(gpus, threads=ncpus)

    from ..network.refine import RefineSettings
    from ..steps.refine import run_refine

    settings = RefineSettings(
        iterations=iterations, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
        filter_base=filter_base, unet_depth=unet_depth, convs_per_depth=convs_per_depth, kernel=kernel,
        dropout=dropout, batch_norm=batch_norm, learning_rate=learning_rate, noise_level=noise_level,
        noise_start_iter=noise_start_iter, noise_mode=noise_mode, select_subtomo_number=select_subtomo_number,
        pretrained_model=pretrained_model, seed=seed, precision=precision, noise2noise=noise2noise,
        early_stop_patience=early_stop_patience, fill_relaxation=fill_relaxation,
    )
    run_refine(subtomo_star, result_dir, settings, until_iter=until_iter, resume=resume, halves=halves,
               log_level=log_level, half=half)
