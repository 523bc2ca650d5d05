"""isonet demo: a synthetic tomogram through the whole pipeline, on a laptop CPU."""

import click

from ._common import log_level_option, option, step

#: Small settings that finish in under 10 minutes on 2 CPU cores: the real method, scaled down
#: (one network, so the budget goes into a visible correction; --quick adds the gold-standard halves).
DEMO = dict(number_subtomos=96, cube_size=32, iterations=8, epochs=3, steps_per_epoch=20, batch_size=8,
            filter_base=16, unet_depth=3, noise_level=(0.05,), noise_start_iter=(6,), halves=False,
            predict_cube_size=32, predict_crop_size=48, predict_batch_size=8, gpus="cpu")
#: A one-minute smoke run through every step, the gold-standard halves and FSC included.
QUICK = dict(DEMO, number_subtomos=24, cube_size=16, iterations=2, epochs=1, steps_per_epoch=4, filter_base=4,
             unet_depth=2, noise_start_iter=(2,), predict_cube_size=16, predict_crop_size=32, halves=True)


@step("demo")
@option("--outdir", default="isonet_demo", help="Folder for the phantom, every step's output and the report.")
@option("--quick/--no-quick", default=False, help="A tiny run (about a minute) that still goes through every step.")
@option("--seed", type=int, default=0, help="Phantom and training seed.")
@log_level_option()
def command(outdir, quick, seed, log_level):
    """Make a phantom tomogram with known ground truth and run the whole pipeline on it."""
    from pathlib import Path

    from ..log import get_logger
    from ..pipeline import Pipeline
    from ._invoke import call_step
    from .run import run_with_report

    out = Path(outdir)
    data = out / "data"
    shape = "32,96,96" if quick else "64,128,128"
    if not (data / "tomo.mrc").exists():
        call_step("make-phantom", [data, "--shape", shape, "--seed", seed, "--snr", 0.5, "--pixel-size", 10,
                                   "--log-level", log_level])
    tomos = out / "tomograms"
    tomos.mkdir(parents=True, exist_ok=True)
    link = tomos / "phantom.mrc"
    if not link.exists():
        link.symlink_to(Path("..") / "data" / "tomo.mrc")
    params = dict(QUICK if quick else DEMO, seed=seed, pixel_size=10.0)
    pipeline = Pipeline(str(tomos), out, params, log_level=log_level, ground_truth=str(data / "ground_truth.mrc"))
    run_with_report(pipeline, log_level)
    report = out / "report.html"
    get_logger().info("demo finished")
    click.echo(f"Report: {report.resolve()}" if report.exists() else f"Results: {out.resolve()}")
