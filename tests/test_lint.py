"""ruff (style, imports, docstrings) and mypy (types) as tests, with the settings in pyproject.toml.

Both run as subprocesses of this interpreter, so they are the versions the test extras pin. The
controls run the same settings on a deliberately bad file: a check that looked at nothing (a wrong
path, a lost setting) would pass silently, but it cannot also fail on the control.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"

# Undocumented public function and an unused import: rules only this project's settings enable
# (pydocstyle) next to one ruff checks by default.
BAD_STYLE = '''"""A module with a docstring, so only the function below is missing one."""

import os


def public_without_docstring(x):
    return x
'''

# A type error inside an unannotated function: mypy reports it only with check_untyped_defs.
BAD_TYPES = '''"""A module whose only error needs check_untyped_defs to be seen."""


def untyped():
    count: int = "three"
    return count
'''


def _run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def _output(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_ruff_passes_on_package_tests_and_benchmarks():
    result = _run("ruff", "check", "--no-cache", "isonet_steps", "tests", "benchmarks")
    assert result.returncode == 0, _output(result)


def test_mypy_passes_on_the_package():
    result = _run("mypy", "--config-file", PYPROJECT)
    assert result.returncode == 0, _output(result)
    assert "Success: no issues found" in result.stdout, _output(result)


def test_ruff_control_fails_on_a_bad_file(tmp_path):
    bad = tmp_path / "bad_style.py"
    bad.write_text(BAD_STYLE)
    result = _run("ruff", "check", "--no-cache", "--config", PYPROJECT, bad, cwd=tmp_path)
    assert result.returncode == 1, _output(result)
    assert "D103" in result.stdout and "F401" in result.stdout, _output(result)


def test_mypy_control_fails_on_a_bad_file(tmp_path):
    bad = tmp_path / "bad_types.py"
    bad.write_text(BAD_TYPES)
    result = _run("mypy", "--config-file", PYPROJECT, bad, cwd=tmp_path)
    assert result.returncode == 1, _output(result)
    assert 'bad_types.py:5: error: Incompatible types in assignment (expression has type "str"' in result.stdout, \
        _output(result)
