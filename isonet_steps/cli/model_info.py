"""isonet model-info: print what a model file records of its training (voxel size, network, data)."""

import json

import click

from ._common import log_level_option, option, step


@step("model-info")
@click.argument("model", type=click.Path(path_type=str))
@option("--json/--no-json", "as_json", default=False, help="Print the record as JSON (null: the model has none).")
@log_level_option()
def command(model, as_json, log_level):
    """Print the record refine wrote into MODEL (.keras): the voxel size, cube and crop size, network
    shape, precision and missing wedges it was trained with, noise2noise or not, deconvolved input or
    not, and the digest of the training subtomograms. predict checks tomograms against it.
    """
    from ..io.model_record import describe_model

    record, lines = describe_model(model)
    click.echo(json.dumps(record.to_json() if record else None, indent=1, ensure_ascii=False) if as_json
               else "\n".join(lines))
