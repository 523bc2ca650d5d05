"""isonet refine: train the missing-wedge-correction network on extracted subtomograms."""

import click

from ._common import log_level_option, option, param_options, step


@step("refine")
@click.argument("subtomo_star", type=click.Path(dir_okay=False, path_type=str))
@option("--result-dir", default="results", help="Folder for models, checkpoints and the log.")
@param_options("refine")
@option("--continue/--no-continue", "resume", default=True,
        help="Continue after the last finished iteration in --result-dir "
             "(--no-continue sets an old run aside as <dir>~).")
@option("--until-iter", type=int, default=None, help="Stop after this iteration (one-iteration tasks in Nextflow).")
@option("--half", type=click.IntRange(1, 2), default=None,
        help="Train only this rlnRandomSubset half's network, into --result-dir itself: the two halves of --halves "
             "as two independent runs (Nextflow runs them side by side).")
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
