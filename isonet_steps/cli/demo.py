"""isonet demo: a synthetic tomogram through the whole pipeline, on a laptop CPU."""

import click

from ..workflow.demo import MIN_ITERATIONS, REFINE_BUDGET_S
from ._common import log_level_option, option, param_options, step


@step("demo")
@option("--outdir", default="isonet_demo", help="Folder for the phantom, every step's output and the report.")
@option("--quick/--no-quick", default=False, help="A tiny run (about a minute) that still goes through every step.")
@param_options("demo")
@option("--time-budget", type=float, default=REFINE_BUDGET_S, show_default=True,
        help=f"Seconds of refine to aim at: fewer iterations (at least {MIN_ITERATIONS}) where a timed "
             "training step says 8 would take longer; 0 = all 8.")
@log_level_option()
def command(outdir, quick, seed, time_budget, log_level):
    """Make a phantom tomogram with known ground truth and run the whole pipeline on it."""
    from pathlib import Path

    from ..io.log import get_logger
    from ..workflow.demo import demo_pipeline
    from .run import run_with_report

    pipeline = demo_pipeline(outdir, quick=quick, seed=seed, time_budget=time_budget, log_level=log_level)
    run_with_report(pipeline)
    report = pipeline.layout.report
    get_logger().info("demo finished")
    click.echo(f"Report: {report.resolve()}" if report.exists() else f"Results: {Path(outdir).resolve()}")
