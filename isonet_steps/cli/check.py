"""isonet check: tells whether this installation is usable (versions, Keras backend, GPUs)."""

import sys

import click

from ._common import log_level_option, step


@step("check")
@log_level_option()
def command(log_level):
    """Print the versions of isonet-nf and its dependencies, the Keras backend (KERAS_BACKEND,
    default tensorflow) and the GPUs it sees; exit 0 if the install works, 1 with the reason if not.
    """
    from ..report.environment import check_environment

    report = check_environment()
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        click.echo(f"Error: {report.reason}", err=True)
        sys.exit(1)
    click.echo("isonet-nf is ready" + (" (GPU)" if report.gpus else " (CPU only: refine and predict will be slow)"))
