"""What every step shares: both option spellings, `isonet X` == `isonet-X`, a light `--help`."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

from conftest import check_bad_input, check_ok
from isonet_steps.cli.main import STEPS, cli
from isonet_steps.io.star import read_subtomo_star

ROOT = Path(__file__).resolve().parents[1]
MINE = ["prepare-subtomo-star", "extract", "make-phantom", "check"]
HEAVY = ("tensorflow", "keras", "torch", "jax")


def _command(step: str) -> click.Command:
    return importlib.import_module(f"isonet_steps.cli.{STEPS[step]}").command


@pytest.mark.parametrize("step", MINE + ["prepare-star"])
def test_help_lists_both_spellings(step, run_isonet):
    result = check_ok(run_isonet(step, "--help"))
    for param in _command(step).params:
        if isinstance(param, click.Option):
            for opt in param.opts + param.secondary_opts:
                if opt.startswith("--") and opt not in ("--help", "--version"):
                    twin = "--" + opt[2:].replace("-", "_")
                    assert twin in param.opts + param.secondary_opts, f"{opt} has no underscore twin"
                    assert opt in result.output and twin in result.output, (opt, twin)


def test_underscore_spelling_gives_the_same_result(tmp_path, run_isonet, masked_tomo_star):
    check_ok(run_isonet("extract", masked_tomo_star, "--subtomo-folder", tmp_path / "d", "--subtomo-star",
                        tmp_path / "d.star", "--cube-size", "16", "--crop-size", "24", "--no-use-deconv-tomo",
                        "--tomo-idx", "1"))
    check_ok(run_isonet("extract", masked_tomo_star, "--subtomo_folder", tmp_path / "u", "--subtomo_star",
                        tmp_path / "u.star", "--cube_size", "16", "--crop_size", "24", "--no_use_deconv_tomo",
                        "--tomo_idx", "1"))
    d, u = read_subtomo_star(tmp_path / "d.star"), read_subtomo_star(tmp_path / "u.star")
    cols = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnRandomSubset", "rlnCropSize", "rlnCubeSize"]
    assert d[cols].equals(u[cols])
    # and the underscore step name too
    check_ok(run_isonet("prepare_subtomo_star", tmp_path / "u", "--output_star", tmp_path / "p.star",
                        "--pixel_size", "4"))
    assert set(read_subtomo_star(tmp_path / "p.star")["rlnPixelSize"]) == {4.0}


def test_group_and_scripts_are_the_same_commands():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for step, module in STEPS.items():
        assert scripts[f"isonet-{step}"] == f"isonet_steps.cli.{module}:command"
    ctx = click.Context(cli)
    for step in MINE + ["prepare-star"]:
        assert cli.get_command(ctx, step) is _command(step)
        assert cli.get_command(ctx, step.replace("-", "_")) is _command(step)
        assert step in cli.list_commands(ctx)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("step", ["make-phantom", "extract"])
def test_script_and_subcommand_print_the_same_help(step):
    bindir = Path(sys.executable).parent
    if not (bindir / f"isonet-{step}").exists():
        pytest.skip("isonet-* scripts not installed next to this Python")
    group = subprocess.run([str(bindir / "isonet"), step, "--help"], capture_output=True, text=True, timeout=60)
    single = subprocess.run([str(bindir / f"isonet-{step}"), "--help"], capture_output=True, text=True, timeout=60)
    assert group.returncode == single.returncode == 0
    assert f"Usage: isonet {step} " in group.stdout
    assert group.stdout.replace(f"isonet {step}", f"isonet-{step}") == single.stdout


def test_installed_script_runs(tmp_path):
    script = Path(sys.executable).parent / "isonet-prepare-subtomo-star"
    if not script.exists():
        pytest.skip("isonet-* scripts not installed next to this Python")
    result = subprocess.run([str(script), str(tmp_path / "nothing")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("Error:") and "nothing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_does_not_import_deep_learning():
    code = (
        "import sys, json\n"
        "from isonet_steps.cli.main import cli, STEPS\n"
        "found = {}\n"
        "def run(args):\n"
        "    try:\n"
        "        cli.main(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"    return sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "found['isonet --help'] = run(['--help'])\n"
        "ctx_steps = cli.list_commands(None)\n"
        "for step in ctx_steps:\n"
        "    found[step] = run([step, '--help'])\n"
        "print(json.dumps(found))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found.pop("isonet --help") == []
    assert all(s in found for s in MINE)
    heavy = {step: mods[:3] for step, mods in found.items() if mods}
    assert not heavy, f"--help imported deep-learning modules: {heavy}"


def test_version_and_usage_errors_are_one_line(run_isonet):
    result = check_ok(run_isonet("extract", "--version"))
    assert "isonet-extract" in result.output
    check_bad_input(run_isonet("extract", "x.star", "--cube-size", "big"), "--cube-size", "big")
    check_bad_input(run_isonet("extract"), "STAR")
