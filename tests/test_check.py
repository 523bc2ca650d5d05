"""isonet check: versions, backend, GPUs; a non-zero exit with one line when unusable."""

from __future__ import annotations

import os
import subprocess
import sys

from isonet_steps import __version__
from isonet_steps.report.environment import EnvironmentReport

ISONET = [sys.executable, "-c", "import sys; from isonet_steps.cli.main import cli; sys.exit(cli())"]


def _run_check(**env):
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environment.update(TF_CPP_MIN_LOG_LEVEL="3", **env)
    return subprocess.run([*ISONET, "check"], capture_output=True, text=True, env=environment, timeout=180)


def test_check_reports_a_working_install():
    result = _run_check()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"isonet-nf: {__version__}" in out
    packages = ("Python", "numpy", "scipy", "mrcfile", "starfile", "click", "matplotlib", "pillow", "keras",
                "tensorflow")
    for package in packages:
        assert f"\n{package}: " in "\n" + out, package
    assert "Keras backend: tensorflow" in out
    assert "GPUs seen by tensorflow:" in out


def test_check_fails_in_one_line_on_a_bad_backend():
    result = _run_check(KERAS_BACKEND="theano")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "KERAS_BACKEND" in errors[0] and "theano" in errors[0]
    assert "Traceback" not in result.stderr
    assert "numpy: " in result.stdout  # still says what it found


def test_report_lines():
    report = EnvironmentReport(versions={"numpy": "2.0"}, backend="torch", gpus=["NVIDIA H100"])
    assert report.lines() == ["numpy: 2.0", "Keras backend: torch (KERAS_BACKEND)",
                              "GPUs seen by torch: 1 (NVIDIA H100)"]
    assert "not checked" in EnvironmentReport().lines()[-1]
