"""Nextflow's faces of the parameter table (``io.params``), written by a script so none is a hand-kept copy.

``python -m isonet_steps.io.params_faces --write`` (from the repository root) rewrites

- ``nextflow_schema.json``: ``assets/nextflow_schema_frame.json`` (the groups, and the parameters
  Nextflow alone has) with every parameter of the table added to its group;
- the part of ``nextflow.config``'s ``params`` block between the two marker comments;
- in ``conf/modules.config``, each ``ext.args`` block marked ``// isonet-<step>'s parameters``: one
  line per parameter that step takes from Nextflow (``Use.nextflow``).

``--check`` writes nothing and exits 1 naming the stale files (``tests/test_params_single_source.py``
does the same).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from .atomic import write_text
from .params import PARAMS, Param, as_text, uses_of

SCHEMA = "nextflow_schema.json"
SCHEMA_FRAME = "assets/nextflow_schema_frame.json"
CONFIG = "nextflow.config"
MODULES = "conf/modules.config"
FACES = (SCHEMA, CONFIG, MODULES)

_SCHEMA_TYPES = {"float": "number", "int": "integer", "str": "string", "bool": "boolean", "floats": "string",
                 "ints": "string"}
_BOOLEAN_RULE = ".toString().trim().toLowerCase() in ['true', 'yes', '1']"  # asBool's rule (utils_isonet)
CONFIG_START = "    // >>> the isonet_steps parameters, made from isonet_steps/io/params.py: edit there, then run"
CONFIG_HOW = "    //     python -m isonet_steps.io.params_faces --write (docs/architecture.md)"
CONFIG_END = "    // <<< end of the isonet_steps parameters"
_MODULE_BLOCK = re.compile(r"^( *)// isonet-([a-z-]+)'s parameters, made from isonet_steps/io/params\.py\n"
                           r"(.*?)^\1// end of isonet-\2's parameters\n", re.M | re.S)


def _in_nextflow() -> list[Param]:
    return [param for param in PARAMS if param.nextflow]


def schema_property(param: Param) -> dict[str, Any]:
    """The parameter's property in nextflow_schema.json."""
    extra = dict(param.schema or {})
    prop: dict[str, Any] = {"type": _SCHEMA_TYPES[param.kind]}
    if param.default is not None:
        prop["default"] = as_text(param.default)
    prop["description"] = extra.pop("description", param.help)
    if "help_text" in extra:
        prop["help_text"] = extra.pop("help_text")
    if param.choices:
        prop["enum"] = list(param.choices)
    return prop | extra


def schema_text(frame_text: str) -> str:
    """nextflow_schema.json: the frame with each parameter added to its group (after the frame's own)."""
    schema = json.loads(frame_text)
    groups = schema["$defs"]
    for param in _in_nextflow():
        key = f"{param.group}_options"
        if key not in groups:
            raise ValueError(f"{param.name}: group {param.group!r} is not in {SCHEMA_FRAME}; add it there.")
        groups[key]["properties"][param.name] = schema_property(param)
    return json.dumps(schema, indent=4, ensure_ascii=False) + "\n"


def _groovy(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return f"'{as_text(value)}'"


def config_lines(titles: dict[str, str]) -> list[str]:
    """The generated lines of nextflow.config's params block, one section per schema group."""
    params = _in_nextflow()
    width = max(len(param.name) for param in params)
    lines = [CONFIG_START, CONFIG_HOW]
    for group in dict.fromkeys(param.group for param in params):
        lines.append("")
        lines.append(f"    // --- {titles[group]} ".ljust(100, "-"))
        lines += [f"    {p.name:<{width}} = {_groovy(p.default)}" for p in params if p.group == group]
    return [*lines, CONFIG_END]


def config_text(config: str, frame_text: str) -> str:
    """nextflow.config with the part between the marker comments made anew."""
    lines = config.split("\n")
    if CONFIG_START not in lines or CONFIG_END not in lines:
        raise ValueError(f"{CONFIG}: the marker comments of the generated parameters are missing; put back the lines "
                         f"{CONFIG_START.strip()!r} and {CONFIG_END.strip()!r} inside params {{}}.")
    start, end = lines.index(CONFIG_START), lines.index(CONFIG_END)
    titles = {key.removesuffix("_options"): group["title"]
              for key, group in json.loads(frame_text)["$defs"].items()}
    return "\n".join(lines[:start] + config_lines(titles) + lines[end + 1:])


def ext_args_line(param: Param, option: str) -> str:
    """The Groovy list item that passes ``params.<name>`` as ``--<option>`` (nothing when null)."""
    flag = "--" + option.replace("_", "-")
    value = f"params.{param.name}"
    if param.kind == "bool":
        return f"{value}{_BOOLEAN_RULE} ? '{flag}' : '--no-{flag[2:]}'"
    if param.default is None:
        return f"{value} != null ? \"{flag} ${{{value}}}\" : ''"
    return f"\"{flag} ${{{value}}}\""


def modules_text(modules: str) -> str:
    """conf/modules.config with every marked ext.args block made anew from the steps' uses."""

    def block(m: re.Match) -> str:
        indent, step = m.group(1), m.group(2)
        items = [ext_args_line(param, use.option_name(param)) for param, use in uses_of(step.replace("-", "_"))
                 if param.nextflow and use.nextflow]
        if not items:
            raise ValueError(f"{MODULES}: isonet-{step} takes no parameter from Nextflow; remove its marked block.")
        body = "".join(f"{indent}{item}{',' if i < len(items) - 1 else ''}\n" for i, item in enumerate(items))
        return (f"{indent}// isonet-{step}'s parameters, made from isonet_steps/io/params.py\n{body}"
                f"{indent}// end of isonet-{step}'s parameters\n")

    return _MODULE_BLOCK.sub(block, modules)


def faces(root: Path) -> dict[str, str]:
    """Every generated file's text, by its path relative to ``root``, made from the files there now."""
    frame = (root / SCHEMA_FRAME).read_text()
    return {
        SCHEMA: schema_text(frame),
        CONFIG: config_text((root / CONFIG).read_text(), frame),
        MODULES: modules_text((root / MODULES).read_text()),
    }


def stale(root: Path) -> list[str]:
    """The generated files whose text is not what the table makes."""
    return [name for name, text in faces(root).items() if (root / name).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    """Write (``--write``) or check (``--check``) the generated files under ``--root``."""
    parser = argparse.ArgumentParser(prog="python -m isonet_steps.io.params_faces", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root [default: here]")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite the generated files")
    action.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.root)
        for name in names:
            print(f"{name} is stale: run python -m isonet_steps.io.params_faces --write", file=sys.stderr)
        return 1 if names else 0
    for name, text in faces(args.root).items():
        if (args.root / name).read_text() != text:
            write_text(args.root / name, text)
            print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
