"""Each module's meta.yml (nf-core's module format) against the process it describes.

For every modules/local/<step>/main.nf there is a meta.yml beside it that parses, has nf-core's
top-level fields, names the process (in lower case) and the one isonet-<step> executable its
script runs, and lists the same input and output channels as main.nf, element by element and in
order: input `val(NAME)`/`path(NAME, ...)` as NAME, output `path('GLOB')` as GLOB, `val(x)` as x
(`meta`, `${task.process}`, the tool name) and `eval('CMD')` as CMD; a `topic:` output also appears
under `topics:`. The channels are read from main.nf with a small parser (quotes, nested
parentheses and `//` comments handled); the tests below also prove the parser and the comparison
catch a meta.yml that misses or reorders an element.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIRS = sorted(path.parent for path in (ROOT / "modules" / "local").glob("*/main.nf"))
REQUIRED_FIELDS = ("name", "description", "keywords", "tools", "input", "output", "authors", "maintainers")
ELEMENT_TYPES = {"map", "file", "directory", "string", "integer", "float", "boolean", "list"}
SECTION = re.compile(r"^\s*(input|output|when|script|shell|exec|stub)\s*:\s*$")
QUALIFIER = re.compile(r"^(val|path|file|env|eval|stdin|stdout)\b\s*(?:\((.*)\)|(.*))$", re.DOTALL)


# --- reading main.nf ---------------------------------------------------------------------------


def strip_comments(text: str) -> str:
    """The text without `//` and `/* */` comments; quoted strings are kept whole."""
    out, i, quote = [], 0, None
    while i < len(text):
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def split_top(text: str) -> list[str]:
    """Split at commas outside quotes and brackets."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _element(text: str) -> tuple[str, str]:
    """(qualifier, name) of one declaration such as `path(star, stageAs: 'input/*')`."""
    found = QUALIFIER.match(text.strip())
    if not found:
        raise ValueError(f"not a channel element: {text!r}")
    qualifier, args = found.group(1), found.group(2) if found.group(2) is not None else found.group(3)
    first = split_top(args)[0] if args and args.strip() else ""
    return qualifier, _unquote(first)


def _declarations(block: str) -> list[str]:
    """The block's declarations, one per entry; a declaration may continue over lines."""
    entries, current, depth = [], "", 0
    for line in block.splitlines():
        if not line.strip() and depth == 0:
            continue
        current = f"{current} {line.strip()}".strip()
        depth = sum(current.count(c) for c in "([") - sum(current.count(c) for c in ")]")
        if depth <= 0 and not current.endswith(","):
            entries.append(current)
            current, depth = "", 0
    if current:
        entries.append(current)
    return entries


def _channel(declaration: str) -> dict:
    """A channel: its elements [(qualifier, name)], emit and topic."""
    text = declaration.strip()
    is_tuple = re.match(r"^tuple\b", text) is not None
    parts = split_top(text[len("tuple"):] if is_tuple else text)
    options = {}
    elements = []
    for part in parts:
        option = re.match(r"^(\w+)\s*:\s*(.+)$", part, re.DOTALL)
        if option and not QUALIFIER.match(part):
            options[option.group(1)] = _unquote(option.group(2))
        else:
            elements.append(_element(part))
    return {"elements": elements, "emit": options.get("emit"), "topic": options.get("topic")}


def parse_process(text: str) -> dict:
    """The process name, its input and output channels and the executables its script runs."""
    text = strip_comments(text)
    name = re.search(r"^\s*process\s+(\w+)\s*\{", text, re.MULTILINE).group(1)
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        label = SECTION.match(line)
        if label:
            current = label.group(1)
            sections[current] = []
        elif current:
            sections[current].append(line)
    script = "\n".join(sections.get("script", []))
    return {
        "name": name,
        "input": [_channel(entry) for entry in _declarations("\n".join(sections.get("input", [])))],
        "output": [_channel(entry) for entry in _declarations("\n".join(sections.get("output", [])))],
        "executables": sorted(set(re.findall(r"(?<![\w/.-])(isonet-[a-z][a-z-]*)\b", script))),
    }


# --- reading meta.yml ----------------------------------------------------------------------------


def _meta_elements(channel) -> list[tuple[str, dict]]:
    """[(name, properties)] of one meta.yml channel: a list of one-key maps, or one one-key map."""
    items = channel if isinstance(channel, list) else [channel]
    elements = []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            raise ValueError(f"a channel element must be a map with one key: {item!r}")
        (key, props), = item.items()
        elements.append((str(key), props or {}))
    return elements


def _meta_output(channels) -> list[tuple[str, dict]]:
    """An output (or topic) entry: a list holding one tuple (a list), or the elements themselves."""
    if not isinstance(channels, list) or not channels:
        raise ValueError(f"an output must be a non-empty list: {channels!r}")
    if all(isinstance(item, list) for item in channels):
        if len(channels) != 1:
            raise ValueError("an output lists one channel")
        return _meta_elements(channels[0])
    return _meta_elements(channels)


def _check_elements(where: str, declared: list[tuple[str, str]], described: list[tuple[str, dict]]) -> list[str]:
    problems = []
    names = [name for _, name in declared]
    meta_names = [name for name, _ in described]
    if names != meta_names:
        problems.append(f"{where}: main.nf declares {names}, meta.yml lists {meta_names}")
        return problems
    for (qualifier, name), (_, props) in zip(declared, described):
        kind = props.get("type")
        if kind not in ELEMENT_TYPES:
            problems.append(f"{where} {name}: type {kind!r} is not one of {sorted(ELEMENT_TYPES)}")
        if not str(props.get("description") or "").strip():
            problems.append(f"{where} {name}: no description")
        if qualifier == "path":
            if kind not in ("file", "directory"):
                problems.append(f"{where} {name}: a path() is a file or directory, not {kind!r}")
            if not props.get("pattern"):
                problems.append(f"{where} {name}: a path() needs a pattern")
        elif qualifier in ("val", "eval") and kind in ("file", "directory"):
            problems.append(f"{where} {name}: a {qualifier}() is not a {kind}")
        if qualifier == "val" and name.startswith("meta") and kind != "map":
            problems.append(f"{where} {name}: the meta map has type {kind!r}")
    return problems


def compare(meta: dict, process: dict) -> list[str]:
    """Every difference between a module's meta.yml (loaded) and its parsed main.nf."""
    problems = [f"missing field {field}" for field in REQUIRED_FIELDS if field not in meta]
    if problems:
        return problems
    if meta["name"] != process["name"].lower():
        problems.append(f"name {meta['name']!r} is not the process name {process['name'].lower()!r}")

    inputs = meta["input"] or []
    if len(inputs) != len(process["input"]):
        problems.append(f"input: main.nf has {len(process['input'])} channels, meta.yml {len(inputs)}")
    for i, (declared, described) in enumerate(zip(process["input"], inputs)):
        try:
            problems += _check_elements(f"input {i + 1}", declared["elements"], _meta_elements(described))
        except ValueError as exc:
            problems.append(f"input {i + 1}: {exc}")

    outputs = meta["output"] or {}
    emits = [channel["emit"] for channel in process["output"]]
    if not isinstance(outputs, dict) or list(outputs) != emits:
        problems.append(f"output: main.nf emits {emits}, meta.yml lists "
                        f"{list(outputs) if isinstance(outputs, dict) else outputs}")
    else:
        for channel in process["output"]:
            try:
                problems += _check_elements(f"output {channel['emit']}", channel["elements"],
                                            _meta_output(outputs[channel["emit"]]))
            except ValueError as exc:
                problems.append(f"output {channel['emit']}: {exc}")

    topics = meta.get("topics") or {}
    declared_topics = {channel["topic"]: channel for channel in process["output"] if channel["topic"]}
    if set(topics) != set(declared_topics):
        problems.append(f"topics: main.nf has {sorted(declared_topics)}, meta.yml {sorted(topics)}")
    else:
        for topic, channel in declared_topics.items():
            try:
                problems += _check_elements(f"topic {topic}", channel["elements"], _meta_output(topics[topic]))
            except ValueError as exc:
                problems.append(f"topic {topic}: {exc}")
    return problems


def load(module_dir: Path) -> tuple[dict, dict]:
    meta = yaml.safe_load((module_dir / "meta.yml").read_text())
    return meta, parse_process((module_dir / "main.nf").read_text())


# --- the modules -----------------------------------------------------------------------------------


def test_every_module_is_found():
    assert len(MODULE_DIRS) == 11, [d.name for d in MODULE_DIRS]


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=lambda d: d.name)
def test_meta_yml_matches_main_nf(module_dir):
    assert (module_dir / "meta.yml").is_file(), f"{module_dir.name}: no meta.yml"
    meta, process = load(module_dir)
    assert isinstance(meta, dict)
    assert process["input"] and process["output"]
    assert compare(meta, process) == []


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=lambda d: d.name)
def test_meta_yml_fields(module_dir):
    meta, process = load(module_dir)
    assert isinstance(meta["description"], str) and meta["description"].strip()
    keywords = meta["keywords"]
    assert len(keywords) >= 3 and len(set(keywords)) == len(keywords)
    assert meta["authors"] and meta["maintainers"]

    # one tool: the isonet-<step> executable the script runs, a console script of the package
    assert len(meta["tools"]) == 1
    (tool, info), = meta["tools"][0].items()
    assert process["executables"] == [tool]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert tool in scripts
    assert info["description"].strip()
    assert info["licence"] == ["MIT"]
    assert info.get("homepage") or info.get("documentation")
    doc = info.get("documentation")
    if doc and not re.match(r"^(https?|ftp)://", doc):
        assert (ROOT / doc).is_file(), doc

    # the versions channel names the same tool
    for channel in process["output"]:
        if channel["topic"] == "versions":
            assert channel["elements"][1] == ("val", tool)


# --- the parser and the comparison catch what they should ------------------------------------------

SAMPLE = """
// a comment with tuple val(nothing)
process ISONET_SAMPLE {
    input:
    tuple val(meta), path(star, stageAs: 'input/*'), path(tomos)   // trailing comment
    val meta2
    path(model,
         stageAs: 'm/*')

    output:
    tuple val(meta), path('out/*.mrc'), emit: tomos
    tuple val("${task.process}"), val('isonet-sample'), eval('isonet-sample --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    \"\"\"
    isonet-sample ${star} // not a comment inside the script's text matters not
    \"\"\"
}
"""  # noqa: E501 - the sample keeps a long Nextflow output declaration on one line, as modules write it


def test_parser_reads_the_declarations():
    process = parse_process(SAMPLE)
    assert process["name"] == "ISONET_SAMPLE"
    assert [c["elements"] for c in process["input"]] == [
        [("val", "meta"), ("path", "star"), ("path", "tomos")],
        [("val", "meta2")],
        [("path", "model")],
    ]
    assert process["output"][0] == {"elements": [("val", "meta"), ("path", "out/*.mrc")], "emit": "tomos",
                                    "topic": None}
    assert process["output"][1]["elements"] == [
        ("val", "${task.process}"), ("val", "isonet-sample"), ("eval", 'isonet-sample --version | sed "s/.* //"'),
    ]
    assert process["output"][1]["topic"] == "versions" and process["output"][1]["emit"] == "versions"
    assert process["executables"] == ["isonet-sample"]


def test_parser_reads_a_real_module():
    process = parse_process((ROOT / "modules/local/refine_iteration/main.nf").read_text())
    names = [name for _, name in process["input"][0]["elements"]]
    assert names == ["meta", "done", "previous", "star", "subtomos", "sources"]
    assert [c["emit"] for c in process["output"]] == ["state", "models"]
    assert not any(c["topic"] for c in process["output"])


def _deconv():
    return load(ROOT / "modules" / "local" / "deconv")


def test_comparison_catches_a_missing_input():
    meta, process = _deconv()
    assert compare(meta, process) == []
    broken = copy.deepcopy(meta)
    del broken["input"][0][2]          # tomos
    assert any("input 1" in p for p in compare(broken, process))


def test_comparison_catches_reordered_and_renamed_outputs():
    meta, process = _deconv()
    swapped = copy.deepcopy(meta)
    tup = swapped["output"]["deconv"][0]
    tup[1], tup[2] = tup[2], tup[1]
    assert compare(swapped, process)
    renamed = copy.deepcopy(meta)
    renamed["output"] = {"deconvolved" if k == "deconv" else k: v for k, v in renamed["output"].items()}
    assert compare(renamed, process)


def test_comparison_catches_missing_topics_types_and_fields():
    meta, process = _deconv()
    no_topic = copy.deepcopy(meta)
    del no_topic["topics"]
    assert compare(no_topic, process)
    wrong_type = copy.deepcopy(meta)
    wrong_type["input"][0][0]["meta"]["type"] = "string"
    assert compare(wrong_type, process)
    no_pattern = copy.deepcopy(meta)
    del no_pattern["output"]["deconv"][0][2]["deconv/*"]["pattern"]
    assert compare(no_pattern, process)
    no_name = copy.deepcopy(meta)
    del no_name["name"]
    assert compare(no_name, process) == ["missing field name"]
    wrong_name = copy.deepcopy(meta)
    wrong_name["name"] = "isonet_mask"
    assert compare(wrong_name, process)


def test_comparison_catches_a_new_input_in_main_nf():
    meta, process = _deconv()
    grown = copy.deepcopy(process)
    grown["input"].append({"elements": [("path", "extra")], "emit": None, "topic": None})
    assert compare(meta, grown)
