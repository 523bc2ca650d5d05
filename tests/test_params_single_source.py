"""One source of parameters: ``isonet_steps/io/params.py`` is the table, every other place is made from it.

The commands' options are built from the table when imported; ``nextflow_schema.json``, the
``params`` block of ``nextflow.config`` and the parameters' ``ext.args`` lines in
``conf/modules.config`` are written by ``python -m isonet_steps.io.params_faces --write``. These tests
check that the written files are what the generator makes now (a stale file fails), and that the
options the table builds behave: types, lists, choices, per-command defaults, both spellings.
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from isonet_steps.io import params_faces
from isonet_steps.io.params import BY_NAME, PARAMS, uses_of

ROOT = Path(__file__).resolve().parents[1]


def _copy_inputs(to: Path) -> Path:
    for name in (*params_faces.FACES, params_faces.SCHEMA_FRAME):
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, to / name)
    return to


def test_generated_files_are_what_the_generator_writes(tmp_path):
    """The generator run into a copy changes nothing: the checked-in files are current, byte for byte."""
    root = _copy_inputs(tmp_path)
    run = subprocess.run([sys.executable, "-m", "isonet_steps.io.params_faces", "--write", "--root", str(root)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    stale = [name for name in params_faces.FACES if (root / name).read_bytes() != (ROOT / name).read_bytes()]
    assert not stale, f"stale: {stale}; run python -m isonet_steps.io.params_faces --write"


def test_a_hand_edit_or_a_changed_default_makes_the_files_stale(tmp_path, monkeypatch):
    """Control: a hand-edited generated line, and a changed table default, are both caught."""
    root = _copy_inputs(tmp_path)
    assert params_faces.stale(root) == []
    config = root / params_faces.CONFIG
    config.write_text(config.read_text().replace("learning_rate         = 0.0004", "learning_rate         = 0.001"))
    assert params_faces.stale(root) == [params_faces.CONFIG]
    assert params_faces.main(["--check", "--root", str(root)]) == 1
    assert params_faces.main(["--write", "--root", str(root)]) == 0 and params_faces.stale(root) == []
    changed = tuple(dataclasses.replace(p, default=0.001) if p.name == "learning_rate" else p for p in PARAMS)
    monkeypatch.setattr(params_faces, "PARAMS", changed)
    assert params_faces.stale(root) == [params_faces.SCHEMA, params_faces.CONFIG]


def test_ext_args_lines_pass_each_value_as_the_step_reads_it():
    """Null defaults are left out when unset (the step's own default holds); booleans use asBool's rule."""
    text = params_faces.modules_text((ROOT / params_faces.MODULES).read_text())
    assert '"--learning-rate ${params.learning_rate}"' in text
    assert "params.chunk_size != null ? \"--chunk-size ${params.chunk_size}\" : ''" in text
    assert ("params.batch_norm.toString().trim().toLowerCase() in ['true', 'yes', '1'] ? '--batch-norm' : "
            "'--no-batch-norm'") in text
    assert '"--cube-size ${params.predict_cube_size}"' in text  # predict's own option name
    assert "--iterations ${params" not in text  # the refine modules pass it themselves (Use.nextflow False)
    with pytest.raises(ValueError, match="resize takes no parameter"):
        params_faces.modules_text("    // isonet-resize's parameters, made from isonet_steps/io/params.py\n"
                                  "    // end of isonet-resize's parameters\n")


def _command(name: str) -> click.Command:
    return importlib.import_module(f"isonet_steps.cli.{name}").command


def _parse(name: str, *args: str) -> dict:
    command = _command(name)
    extra = ["x.star"] * sum(isinstance(p, click.Argument) for p in command.params)
    with command.make_context(name, [*extra, *args]) as ctx:
        return ctx.params


@pytest.mark.parametrize("command", sorted({use.command for param in PARAMS for use in param.uses}))
def test_each_command_takes_its_parameters_with_its_defaults(command):
    """Unset, each option has the command's default (the pipeline's, or the command's own where it differs)."""
    values = _parse(command)
    for param, use in uses_of(command):
        assert values[use.option_name(param)] == use.default_for(param), (command, param.name)


def test_commands_own_defaults_differ_only_where_the_table_says():
    assert _parse("fsc")["pixel_size"] is None and _parse("prepare_star")["pixel_size"] == 10.0
    assert _parse("prepare_subtomo_star")["cube_size"] is None and _parse("extract")["cube_size"] == 64
    assert _parse("predict")["cube_size"] == BY_NAME["predict_cube_size"].default == 96


def test_built_options_parse_lists_choices_ranges_and_both_spellings():
    values = _parse("refine", "--noise_level", "0.1, 0.2", "--noise-start-iter", "3,5", "--drop-out", "0.2",
                    "--no_batch_norm", "--learning_rate", "1e-3")
    assert values["noise_level"] == (0.1, 0.2) and values["noise_start_iter"] == (3, 5)
    assert values["dropout"] == 0.2 and values["batch_norm"] is False and values["learning_rate"] == 0.001
    assert _parse("refine")["noise_level"] == (0.05, 0.1, 0.15, 0.2)
    for name, args in (("refine", ["--noise-mode", "sharp"]), ("refine", ["--noise-start-iter", "3.5"]),
                       ("predict", ["x.keras", "--cube-size", "0"]), ("prepare_star", ["--wedge-check", "maybe"])):
        with pytest.raises(click.ClickException, match=args[-2]):
            _parse(name, *args)
    assert _parse("prepare_star", "--no-fix-nonfinite")["fix_nonfinite"] is False


def test_run_options_are_unset_unless_given_and_typed_by_the_table():
    """`isonet run` leaves every parameter None unless given, so a params file's value holds."""
    values = _parse("run")
    assert all(values[p.name] is None for p in PARAMS)
    given = _parse("run", "--cube_size", "48", "--precision", "mixed", "--halves")
    assert given["cube_size"] == 48 and given["precision"] == "mixed" and given["halves"] is True
    with pytest.raises(click.ClickException, match="--precision"):
        _parse("run", "--precision", "double")
