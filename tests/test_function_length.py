"""No function over 60 lines in the lower layers (io, core, network, report), as DEVELOPERS.md asks.

Read with ``ast`` (nothing imported); a function's length runs from its ``def`` line to its last
line, docstring included. The upper layers (steps, workflow, cli) are being rewritten (issue #12)
and join this list when they comply.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "isonet_steps"
LAYERS = ("io", "core", "network", "report")
MAX_LINES = 60


def long_functions(root: Path, max_lines: int = MAX_LINES) -> list[str]:
    """``path:line name (N lines)`` for every function or method longer than ``max_lines``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > max_lines:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_long_function_in_the_lower_layers():
    found = [f for layer in LAYERS for f in long_functions(PACKAGE / layer)]
    assert not found, "split these into well-named helpers:\n" + "\n".join(found)


def test_the_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path / "pkg") == ["pkg/m.py:5 long (61 lines)"]
