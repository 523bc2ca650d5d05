"""The package's imports go only downwards through its layers, and form no cycle.

The layers are the subpackages, lowest first: ``io``, ``core``, ``network``, ``figures``,
``steps``, ``workflow``, ``report``, ``cli``. A module may import its own layer and the layers below it
(lazy imports inside functions count too). This reads every module's imports with ``ast`` (no
import is executed), so a test, not a convention, keeps the tree's shape true.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "isonet_steps"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Map each module to the package modules it imports (relative imports, wherever they stand)."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules and a.name != name}
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 0:
                target = node.module or ""
            else:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            candidates = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            for candidate in candidates:
                if candidate in modules and candidate != name:
                    graph[name].add(candidate)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40 and graph["isonet_steps.core.deconv_chunked"] >= {"isonet_steps.core.ctf"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle(tmp_path):
    """Control: two modules importing each other (one lazily) are reported."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def thing():\n    from . import a\n    return a\n")
    cycle = find_cycle(import_graph(package))
    assert cycle is not None and set(cycle) == {"pkg.a", "pkg.b"}


LAYERS = ("io", "core", "network", "figures", "steps", "workflow", "report", "cli")


def layer_of(module: str) -> int | None:
    """Rank of a module's layer (None: the package root, which may import anything)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 and parts[1] in LAYERS else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every ``importer -> imported`` edge that goes to a higher layer, or leaves the layers."""
    found = []
    for importer, imported in sorted(graph.items()):
        rank = layer_of(importer)
        if rank is None:
            continue
        for target in sorted(imported):
            target_rank = layer_of(target)
            if target_rank is not None and target_rank > rank:
                found.append(f"{importer} -> {target}")
    return found


def test_every_module_lies_in_a_layer():
    root_modules = {"isonet_steps", "isonet_steps.__main__"}
    loose = [m for m in import_graph() if layer_of(m) is None and m not in root_modules
             and m.rpartition(".")[2] not in LAYERS]
    assert loose == []


def test_imports_go_only_downwards():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_finds_an_upward_import(tmp_path):
    """Control: a core module importing the network layer, absolutely and lazily, is reported."""
    package = tmp_path / "isonet_steps"
    for sub in ("core", "network"):
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "network" / "unet.py").write_text("X = 1\n")
    (package / "core" / "wedge.py").write_text("def f():\n    import isonet_steps.network.unet\n")
    (package / "core" / "noise.py").write_text("def f():\n    from ..network.unet import X\n")
    assert upward_imports(import_graph(package)) == [
        "isonet_steps.core.noise -> isonet_steps.network.unet",
        "isonet_steps.core.wedge -> isonet_steps.network.unet"]
