"""STAR columns are spelled once, in ``io/columns.py``, and an empty cell has one rule, ``is_set``.

The package is read with ``ast`` (nothing is imported): a string constant in code that is a
column label (``"rlnMicrographName"``, ``"_rlnTomoName"``, the ``"rlnCorrectedTomoHalf"`` of an
f-string) outside ``io/columns.py`` is a failure; docstrings, comments and messages that mention
a column in prose are fine. Tests may spell labels: they check the file format.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isonet_steps.io import columns
from isonet_steps.io.columns import is_set
from isonet_steps.io.star import read_star, read_tomogram_star, write_star
from isonet_steps.io.tomostar import tomogram_table

PACKAGE = Path(__file__).resolve().parents[1] / "isonet_steps"
#: The one module that spells column labels.
HOME = "io/columns.py"
#: Files other branches owned while issue #24 moved the labels; they still spell some. The integrator
#: empties this set after merging those branches (an entry whose file no longer spells any must go).
PENDING: set[str] = set()
#: A column label as a whole string: RELION's ``rln`` prefix, with or without the STAR file's underscore.
LABEL = re.compile(r"_?rln[A-Za-z0-9]*")


def column_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant in ``source``'s code that is a column label (docstrings skipped)."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return sorted((node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and LABEL.fullmatch(node.value))


def package_literals() -> dict[str, list[tuple[int, str]]]:
    """Every package file (relative to the package) that spells a column label, with its labels."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name != HOME and (hits := column_literals(path.read_text(encoding="utf-8"))):
            found[name] = hits
    return found


def test_no_column_label_is_spelled_outside_io_columns():
    found = package_literals()
    offenders = {name: hits for name, hits in found.items() if name not in PENDING}
    assert not offenders, "import these from isonet_steps.io.columns instead: " + "; ".join(
        f"{name}:{line} {text!r}" for name, hits in offenders.items() for line, text in hits)


def test_pending_lists_only_files_that_still_spell_labels():
    stale = sorted(PENDING - set(package_literals()))
    assert not stale, f"remove {stale} from PENDING: they spell no column label any more"


def test_the_finder_sees_code_and_f_strings_but_not_prose():
    source = '''"""Module docstring naming rlnMicrographName and "rlnMaskName"."""
NAME = "rlnMaskName"  # a comment naming "rlnTiltMin"


def f(row, h):
    """Docstring: "rlnIndex"."""
    message = f"{row['rlnPixelSize']} is not rlnTiltMax {h}"
    return row[f"rlnCorrectedTomoHalf{h}"], message, "rlnDefocus is unset", "_rlnTomoName", "rln"
'''
    assert column_literals(source) == [(2, "rlnMaskName"), (7, "rlnPixelSize"), (8, "_rlnTomoName"),
                                       (8, "rln"), (8, "rlnCorrectedTomoHalf")]


def test_every_label_is_named_once_and_groups_use_the_names():
    labels = {name: value for name, value in vars(columns).items() if name.isupper() and isinstance(value, str)}
    assert len(set(labels.values())) == len(labels), "two constants spell the same label"
    for name, value in labels.items():
        assert value.startswith("rln") and name.replace("_", "") == value[3:].upper(), name
    assert columns.RAW_HALVES == ("rlnTomoReconstructedTomogramHalf1", "rlnTomoReconstructedTomogramHalf2")
    assert columns.CORRECTED_HALVES == ("rlnCorrectedTomoHalf1", "rlnCorrectedTomoHalf2")
    grouped = {*columns.PATH_COLUMNS, *columns.TOMOGRAM_COLUMNS, *columns.SUBTOMO_COLUMNS}
    assert grouped <= set(labels.values())


@pytest.fixture
def written_star(tmp_path):
    """A tomograms.star the package wrote, with set and empty cells of each kind."""
    table = tomogram_table([tmp_path / "a.mrc", tmp_path / "b.mrc"], pixel_size=7.5, defocus=0.0)
    table[columns.DECONV_TOMO_NAME] = [str(tmp_path / "a_deconv.mrc"), "None"]
    table[columns.SNR_FALLOFF] = [0.0, np.nan]
    table[columns.TOMO_NAME] = ["", "TS_02"]
    table[columns.RELION_TOMOGRAMS_STAR] = [pd.NA, "/data/tomograms.star"]
    return write_star(table, tmp_path / "tomograms.star")


def test_is_set_on_cells_read_back_from_a_written_star(written_star):
    text = written_star.read_text()
    assert "None" in text and "<NA>" in text and '""' in text  # the empty cells as starfile writes them
    for table in (read_star(written_star), read_tomogram_star(written_star)):
        row1, row2 = table.iloc[0], table.iloc[1]
        assert is_set(row1[columns.DECONV_TOMO_NAME]) and not is_set(row2[columns.DECONV_TOMO_NAME])
        assert is_set(row1[columns.SNR_FALLOFF]) and not is_set(row2[columns.SNR_FALLOFF])  # 0.0 is a value
        assert not is_set(row1[columns.TOMO_NAME]) and is_set(row2[columns.TOMO_NAME])
        assert not is_set(row1[columns.RELION_TOMOGRAMS_STAR]) and is_set(row2[columns.RELION_TOMOGRAMS_STAR])
        assert not any(map(is_set, table[columns.MASK_BOUNDARY]))
        assert all(map(is_set, table[columns.MICROGRAPH_NAME])) and all(map(is_set, table[columns.DEFOCUS]))


@pytest.mark.parametrize("value", [None, float("nan"), np.nan, np.float32("nan"), pd.NA, "", "  ", "None", " None ",
                                   "none", "nan", "<NA>"])
def test_is_set_empty_values(value):
    assert not is_set(value)


@pytest.mark.parametrize("value", [0, 0.0, -1, np.float64(2.5), "0", "a.mrc", "None.mrc", "TS_01", " x "])
def test_is_set_values(value):
    assert is_set(value)
