"""One source of parameters: every field of ``params.PARAMS`` agrees with the places that repeat it.

``isonet_steps.workflow.params.PARAMS`` gives each parameter's name, kind and default once. The step
commands' Click options, ``RefineSettings``, ``nextflow.config`` and ``nextflow_schema.json``
repeat them; these tests compare every field (type, default, choices), not only the names, and
each has a control that shows the comparison catches a difference.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import click
import pytest

from isonet_steps.workflow.params import PARAMS, Param

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_TYPES = {"float": "number", "int": "integer", "str": "string", "bool": "boolean", "floats": "string",
                "ints": "string"}
# the step command and option that each parameter reaches (isonet run passes it there)
STEP_OPTIONS = {
    "pixel_size": ("prepare_star", "pixel_size"), "defocus": ("prepare_star", "defocus"),
    "number_subtomos": ("prepare_star", "number_subtomos"), "tilt_min": ("prepare_star", "tilt_min"),
    "tilt_max": ("prepare_star", "tilt_max"), "wedge_check": ("prepare_star", "wedge_check"),
    "fix_nonfinite": ("prepare_star", "fix_nonfinite"),
    "voltage": ("deconv", "voltage"), "cs": ("deconv", "cs"),
    "highpassnyquist": ("deconv", "highpassnyquist"), "overlap_rate": ("deconv", "overlap_rate"),
    "chunk_size": ("deconv", "chunk_size"), "patch_size": ("make_mask", "patch_size"),
    "z_crop": ("make_mask", "z_crop"), "seed": ("extract", "seed"), "crop_size": ("extract", "crop_size"),
    "epochs": ("refine", "epochs"), "early_stop_patience": ("refine", "early_stop_patience"),
    "filter_base": ("refine", "filter_base"), "unet_depth": ("refine", "unet_depth"),
    "convs_per_depth": ("refine", "convs_per_depth"), "kernel": ("refine", "kernel"),
    "dropout": ("refine", "dropout"), "batch_norm": ("refine", "batch_norm"),
    "learning_rate": ("refine", "learning_rate"), "fill_relaxation": ("refine", "fill_relaxation"),
    "noise_mode": ("refine", "noise_mode"),
    "precision": ("refine", "precision"), "select_subtomo_number": ("refine", "select_subtomo_number"),
    "steps_per_epoch": ("refine", "steps_per_epoch"), "batch_size": ("refine", "batch_size"),
    "cone_angle": ("fsc", "cone_angle"), "noise2noise": ("extract", "noise2noise"),
}


def _as_text(value):
    """A default as Nextflow and the schema spell it (lists are comma-separated strings)."""
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value


def _config_params() -> dict[str, object]:
    text = (ROOT / "nextflow.config").read_text()
    body = text[text.index("params {"):text.index("\n}\n", text.index("params {"))]
    found = {}
    for name, raw in re.findall(r"^\s*(\w+)\s*=\s*([^/\n]+?)\s*(?://.*)?$", body, re.M):
        raw = raw.strip()
        found[name] = None if raw == "null" else raw == "true" if raw in ("true", "false") else (
            raw[1:-1] if raw[:1] in "'\"" else float(raw) if re.fullmatch(r"-?[\d.]+(e-?\d+)?", raw) else raw)
    return found


def _schema_params() -> dict[str, dict]:
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    return {name: prop for group in schema["$defs"].values() for name, prop in group["properties"].items()}


def _mismatches(param: Param, config: dict, schema: dict) -> list[str]:
    problems = []
    expected = _as_text(param.default)
    if param.name in config:
        given = config[param.name]
        same = given == expected or (isinstance(given, float) and expected is not None
                                     and not isinstance(expected, (bool, str)) and given == float(expected))
        if not same:
            problems.append(f"{param.name}: nextflow.config default {given!r}, params.py {param.default!r}")
    if param.name in schema:
        prop = schema[param.name]
        if prop.get("type") != SCHEMA_TYPES[param.kind]:
            problems.append(f"{param.name}: schema type {prop.get('type')}, params.py kind {param.kind}")
        if prop.get("default") != expected and not (prop.get("default") is None and expected is None):
            problems.append(f"{param.name}: schema default {prop.get('default')!r}, params.py {param.default!r}")
    return problems


def test_params_agree_with_nextflow_config_and_schema_field_by_field():
    config, schema = _config_params(), _schema_params()
    problems = [line for param in PARAMS if param.name != "gpus" for line in _mismatches(param, config, schema)]
    assert not problems, "\n".join(problems)
    # every parameter of the one-machine pipeline exists in Nextflow too (gpus: Nextflow's gpu profile)
    assert {p.name for p in PARAMS} - set(config) == {"gpus"}
    # control: a changed default and a changed type are both caught
    wrong = dataclasses.replace(PARAMS[0], default=PARAMS[0].default + 1, kind="int")
    assert len(_mismatches(wrong, config, schema)) == 3


def _step_option(step: str, name: str) -> click.Option:
    import importlib

    command = importlib.import_module(f"isonet_steps.cli.{step}").command
    return next(o for o in command.params if isinstance(o, click.Option) and o.name == name)


@pytest.mark.parametrize("name", sorted(STEP_OPTIONS))
def test_step_option_defaults_are_the_params_table_defaults(name):
    param = next(p for p in PARAMS if p.name == name)
    step, option = STEP_OPTIONS[name]
    default = _step_option(step, option).default
    assert default == param.default, f"isonet {step} --{option} defaults to {default!r}, params.py {param.default!r}"


def test_refine_settings_defaults_are_the_params_table_defaults():
    from isonet_steps.network.refine import RefineSettings

    fields = {f.name: f.default for f in dataclasses.fields(RefineSettings)}
    shared = [p for p in PARAMS if p.name in fields]
    assert len(shared) >= 15
    for param in shared:
        value = fields[param.name]
        value = tuple(value) if isinstance(value, (list, tuple)) else value
        assert value == param.default, f"RefineSettings.{param.name} = {value!r}, params.py {param.default!r}"


def test_choices_agree_with_the_schema_enums():
    from isonet_steps.network.devices import PRECISIONS
    from isonet_steps.network.refine import NOISE_MODES

    schema = _schema_params()
    assert list(schema["precision"]["enum"]) == list(PRECISIONS)
    assert list(schema["noise_mode"]["enum"]) == list(NOISE_MODES)
    for name, choices in (("precision", PRECISIONS), ("noise_mode", NOISE_MODES)):
        option = _step_option("refine", name)
        assert isinstance(option.type, click.Choice) and list(option.type.choices) == list(choices)
    # a parameter with choices in the table: the schema enum, the step's and isonet run's click.Choice agree
    from isonet_steps.cli.run import command as run_command
    from isonet_steps.steps.prepare_star import WEDGE_CHECKS

    with_choices = [p for p in PARAMS if p.choices is not None]
    assert [p.name for p in with_choices] == ["wedge_check"]
    for param in with_choices:
        assert list(schema[param.name]["enum"]) == list(param.choices) == list(WEDGE_CHECKS)
        step, name = STEP_OPTIONS[param.name]
        for option in (_step_option(step, name), next(o for o in run_command.params if o.name == param.name)):
            assert isinstance(option.type, click.Choice) and list(option.type.choices) == list(param.choices)
