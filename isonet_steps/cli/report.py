"""isonet report: one self-contained HTML page about a run folder."""

import click

from ._common import log_level_option, option, step


@step("report")
@click.argument("run_dir", type=str)
@option("-o", "--output", default=None, help="HTML file to write  [default: RUN_DIR/report.html]")
@option("--refine-dir", "refine_dirs", multiple=True, show_default=False,
        help="refine's result folder, used instead of RUN_DIR/refine; give it twice for the two halves (half 1 "
             "first).")
@option("--fsc", "fsc_files", multiple=True, show_default=False,
        help="An FSC JSON of 'isonet fsc' to show (repeatable), used instead of those found in RUN_DIR.")
@log_level_option()
def command(run_dir, output, refine_dirs, fsc_files, log_level):
    """Build an HTML report of RUN_DIR (the --outdir of 'isonet run' or 'isonet demo', a partial run,
    or a refine --result-dir): slices before and after, the kz–kx power spectrum, training curves,
    the gold-standard FSC, settings, versions and timings. The page needs no network access.
    """
    write_report(run_dir, output, refine_dirs=refine_dirs, fsc_files=fsc_files)


def write_report(run_dir, output=None, *, refine_dirs=(), fsc_files=()):
    """Build the report of ``run_dir`` and write it atomically (default RUN_DIR/report.html); returns its path."""
    from pathlib import Path

    from ..io.atomic import check_writable_target, write_text
    from ..io.errors import InputError
    from ..io.log import get_logger
    from ..io.run_layout import RunLayout
    from ..report.build import build_report

    out = Path(output) if output else RunLayout(Path(run_dir)).report
    if out.is_dir():
        raise InputError(f"{out}: is a folder; give -o the name of the .html file to write.")
    if Path(run_dir).is_dir():
        check_writable_target(out)
    html = build_report(run_dir, refine_dirs=refine_dirs, fsc_files=fsc_files)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, html)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the report ({exc.strerror}); "
                         "choose a writable location with -o.") from None
    get_logger("report").info("wrote %s (%.1f MB)", out, len(html.encode()) / 1e6)
    return out
