"""isonet run: the whole pipeline on one machine, without Nextflow; rerun to continue."""


from ._common import log_level_option, option, pipeline_options, step


def collect_params(params_file, given: dict) -> tuple[dict, dict]:
    """Params file values, overridden by options given on the command line; plus input/outdir."""
    from ..io.params import BY_NAME, coerce, read_params_file

    values = read_params_file(params_file) if params_file else {}
    places = {k: values.pop(k) for k in ("input", "outdir") if k in values}
    for name, value in given.items():
        if value is not None:
            values[name] = coerce(BY_NAME[name], value, f"--{name.replace('_', '-')}")
    return values, places


def run_with_report(pipeline) -> None:
    """Run the pipeline, then write <outdir>/report.html."""
    from .report import write_report

    pipeline.run(report=lambda: write_report(pipeline.out, pipeline.layout.report))


@step("run")
@option("--input", "input_", default=None, help="Folder of tomograms, or a tomograms.star.")
@option("--outdir", default=None, help="Run folder (rerun the same command to continue).")
@option("--params-file", default=None, help="YAML or JSON file with the Nextflow params names.")
@pipeline_options
@log_level_option()
def command(input_, outdir, params_file, log_level, **given):
    """Run prepare-star → deconv → make-mask → extract → refine → predict (→ gold-standard) → report.

    Every finished step is recorded in OUTDIR; running the same command again skips finished
    steps, continues refine after its last finished iteration, and reruns exactly the steps a
    changed setting affects.
    """
    from ..io.errors import InputError
    from ..workflow.pipeline import Pipeline

    values, places = collect_params(params_file, given)
    source = input_ or places.get("input")
    out = outdir or places.get("outdir")
    if not source or not out:
        raise InputError("give --input (a folder of tomograms or a tomograms.star) and --outdir, on the command line "
                         "or in --params-file.")
    run_with_report(Pipeline(source, out, values, log_level=log_level))
