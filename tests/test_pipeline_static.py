"""Static checks of the Nextflow pipeline, beside the runtime tests (tests/test_nextflow_runtime.py).

What is proved here, from the text of main.nf, workflows/, subworkflows/, modules/, conf/,
nextflow.config and nextflow_schema.json:

- the contract between the modules and the step executables: every `isonet-<step> --option`
  a module or conf/modules.config writes exists in that step's --help;
- the wiring: every process and workflow used is included and defined, every include is used,
  every module is used, every emit is consumed by a workflow or published;
- the module conventions: tag, a resource label, meta tuples, ext.args, no when:, versions, a stub
  that touches every output, no params;
- the recursion's documented limits (matching take/emit, no reduction operators, no topic:
  outputs in the recursion, the feature flag set);
- params: defined in nextflow.config and in the schema (same defaults), and used, both ways;
- the configs: labels, retries, the GPU label, the profiles, the hardened shell, the reports;
- bin/: a launcher per step that runs the package from the checkout;
- every .nf/.config file parses as Groovy 4 (.ci/groovy_parse.sh, with a broken file as control).

Each check is written so it fails when the property is broken (some tests build the broken case
on purpose and assert that the check catches it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from functools import cache
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
MODULE_FILES = sorted((ROOT / "modules" / "local").glob("*/main.nf"))
SUBWORKFLOW_FILES = sorted((ROOT / "subworkflows" / "local").glob("*/main.nf"))
WORKFLOW_FILES = [ROOT / "main.nf", ROOT / "workflows" / "isonet.nf", *SUBWORKFLOW_FILES]
NF_FILES = [*WORKFLOW_FILES, *MODULE_FILES]
CONFIG_FILES = [ROOT / "nextflow.config", *sorted((ROOT / "conf").glob("*.config"))]
LABELS = {"process_low", "process_medium", "process_gpu"}
REDUCTION_OPERATORS = ("collect", "reduce", "toList", "toSortedList", "count", "sum", "min", "max",
                       "groupTuple", "collectFile", "buffer", "last", "first", "unique", "distinct")


# --------------------------------------------------------------------------------------------
# A small, string-aware reader of Groovy/Nextflow text
# --------------------------------------------------------------------------------------------

def _scan(text: str) -> tuple[str, str]:
    """Return (code, masked), both as long as ``text``.

    ``code`` is the text with comments blanked; ``masked`` also blanks the inside of string
    literals, so braces, labels and keywords found in it are real syntax.
    """
    code, masked = list(text), list(text)
    i, n = 0, len(text)

    def blank(a: int, b: int, keep_code: bool) -> None:
        for k in range(a, b):
            if text[k] != "\n":
                masked[k] = " "
                if not keep_code:
                    code[k] = " "

    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j, keep_code=False)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j, keep_code=False)
            i = j
        elif text.startswith('"""', i) or text.startswith("'''", i):
            quote = text[i:i + 3]
            j = i + 3
            while j < n and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            blank(i + 3, min(j, n), keep_code=True)
            i = j + 3
        elif text[i] in "'\"":
            quote = text[i]
            j = i + 1
            while j < n and text[j] != quote and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, min(j, n), keep_code=True)
            i = j + 1
        else:
            i += 1
    return "".join(code), "".join(masked)


def _closing_brace(masked: str, open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(masked)):
        if masked[k] == "{":
            depth += 1
        elif masked[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    raise AssertionError(f"unbalanced braces after offset {open_at}")


def _blocks(text: str, keyword: str) -> dict[str, str]:
    """``keyword NAME { body }`` blocks (process, workflow) as name -> body (comments blanked)."""
    code, masked = _scan(text)
    found = {}
    for m in re.finditer(rf"\b{keyword}\s+([A-Za-z_]\w*)?\s*\{{", masked):
        end = _closing_brace(masked, m.end() - 1)
        found[m.group(1) or ""] = code[m.end():end]
    return found


SECTION = re.compile(r"^[ \t]*(input|output|when|script|shell|exec|stub|take|main|emit):[ \t]*$", re.M)


def _sections(body: str) -> dict[str, str]:
    """Split a process/workflow body at its section labels; '' holds the directives."""
    _, masked = _scan(body)
    marks = list(SECTION.finditer(masked))
    parts = {"": body[: marks[0].start()] if marks else body}
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(body)
        parts[m.group(1)] = body[m.end():end]
    return parts


@cache
def _read(path: Path) -> str:
    return path.read_text()


@cache
def processes() -> dict[str, tuple[Path, dict[str, str]]]:
    """Every process defined under modules/: name -> (file, sections)."""
    found = {}
    for path in MODULE_FILES:
        for name, body in _blocks(_read(path), "process").items():
            assert name not in found, f"process {name} defined twice"
            found[name] = (path, _sections(body))
    return found


def _includes(path: Path) -> list[tuple[str, str, Path]]:
    """(name, alias, target file) for every include of a workflow file."""
    code, _ = _scan(_read(path))
    result = []
    for m in re.finditer(r"include\s*\{([^}]*)\}\s*from\s*['\"]([^'\"]+)['\"]", code):
        target = (path.parent / m.group(2)).resolve()
        target = target if target.suffix == ".nf" else target.with_suffix(".nf")
        for clause in re.split(r"[;\n]", m.group(1)):
            words = clause.split()
            if not words:
                continue
            assert len(words) in (1, 3) and (len(words) == 1 or words[1] == "as"), \
                f"{path}: odd include clause {clause!r}"
            result.append((words[0], words[-1], target))
    return result


@cache
def aliases() -> dict[str, str]:
    """Alias (as used in workflows) -> process name, for every included process."""
    found = {}
    for path in WORKFLOW_FILES:
        for name, alias, _ in _includes(path):
            if name in processes():
                found[alias] = name
    return found


def _workflow_code() -> str:
    return "\n".join(_scan(_read(p))[0] for p in WORKFLOW_FILES)


def _selectors(config_text: str, kind: str) -> dict[str, str]:
    """withName:/withLabel: selectors of a config as pattern -> block body."""
    code, masked = _scan(config_text)
    found = {}
    for m in re.finditer(rf"\b{kind}\s*:\s*", masked):
        rest = code[m.end():]
        name = re.match(r"['\"]([^'\"]+)['\"]|([A-Za-z_]\w*)", rest)
        assert name, f"unreadable {kind} selector"
        brace = masked.index("{", m.end() + name.end())
        end = _closing_brace(masked, brace)
        found[name.group(1) or name.group(2)] = code[brace + 1:end]
    return found


def _config_blocks_for(process_alias: str) -> list[str]:
    text = _read(ROOT / "conf" / "modules.config")
    return [body for pattern, body in _selectors(text, "withName").items()
            if re.fullmatch(pattern, process_alias)]


# --------------------------------------------------------------------------------------------
# The step executables
# --------------------------------------------------------------------------------------------

def _step_command(step: str) -> click.Command:
    from isonet_steps.cli.main import STEPS, cli

    assert step in STEPS, f"isonet-{step} is not a step of isonet_steps.cli.main.STEPS"
    command = cli.get_command(click.Context(cli), step)
    if command is None:
        pytest.fail(f"isonet-{step} is not implemented yet (no isonet_steps/cli/{STEPS[step]}.py), "
                    f"but the pipeline calls it; this test passes once the step lands")
    return command


def _step_options(step: str) -> set[str]:
    command = _step_command(step)
    help_text = CliRunner().invoke(command, ["--help"], prog_name=f"isonet-{step}").output
    options = set()
    for param in command.params:
        for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
            if opt.startswith("-") and opt in help_text:
                options.add(opt)
    return options


OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _step_of(script: str) -> str | None:
    m = re.search(r"\bisonet-([a-z][a-z-]*[a-z])\b", script)
    return m.group(1) if m else None


def _options_in_module(sections: dict[str, str]) -> tuple[str | None, set[str]]:
    """The step a module runs and every option it writes for it.

    Long options anywhere in the output/script/stub text count (modules write no other long
    options); short options count on the `isonet-<step>` command lines.
    """
    text = sections.get("script", "") + sections.get("stub", "") + sections.get("output", "")
    step = _step_of(sections.get("script", ""))
    options = {o for o in OPTION.findall(text) if o.startswith("--")}
    logical = re.sub(r"\\\\\n|\\\n", " ", text).replace("set -o pipefail;", "")  # the versions eval's shell option
    for line in logical.splitlines():
        m = re.search(r"\bisonet-[a-z-]+\b(.*)", line)
        if m:
            options |= {o for o in OPTION.findall(m.group(1)) if not o.startswith("--")}
    return step, options


def _module_params():
    return [pytest.param(name, id=name) for name in sorted(processes())]


@pytest.mark.parametrize("process_name", _module_params())
def test_module_options_exist_in_the_step_help(process_name):
    path, sections = processes()[process_name]
    step, options = _options_in_module(sections)
    assert step, f"{path}: the script calls no isonet-<step> executable"
    assert options, f"{path}: no options found, the scan is broken"
    known = _step_options(step)
    missing = sorted(options - known)
    assert not missing, f"{path}: isonet-{step} has no option {', '.join(missing)} (see isonet-{step} --help)"


def _config_params():
    out = []
    for alias, name in sorted(aliases().items()):
        out.append(pytest.param(alias, name, id=alias))
    return out


@pytest.mark.parametrize("alias,process_name", _config_params())
def test_modules_config_options_exist_in_the_step_help(alias, process_name):
    path, sections = processes()[process_name]
    step = _step_of(sections.get("script", ""))
    blocks = _config_blocks_for(alias)
    assert blocks, f"conf/modules.config has no withName block for {alias}"
    options = set()
    for body in blocks:
        options |= {o for o in OPTION.findall(body) if o.startswith("--")}
    missing = sorted(options - _step_options(step))
    assert not missing, f"conf/modules.config ({alias}): isonet-{step} has no option {', '.join(missing)}"


def test_option_scan_catches_an_unknown_option():
    """Control: a module line with a made-up option is reported by the same scan."""
    sections = {"script": '    """\n    isonet-fsc a.mrc b.mrc -o x.json --no-such-option 3\n    """\n'}
    step, options = _options_in_module(sections)
    assert step == "fsc"
    assert "--no-such-option" in options and "-o" in options
    assert "--no-such-option" not in _step_options("fsc")


# --------------------------------------------------------------------------------------------
# Module conventions
# --------------------------------------------------------------------------------------------

def test_every_module_file_defines_one_process():
    assert MODULE_FILES, "no modules under modules/local/"
    for path in MODULE_FILES:
        assert len(_blocks(_read(path), "process")) == 1, f"{path}: one process per file"
    required = {"prepare_star", "deconv", "make_mask", "extract", "refine_iteration", "predict", "fsc", "report"}
    assert required <= {p.parent.name for p in MODULE_FILES}


@pytest.mark.parametrize("process_name", _module_params())
def test_module_conventions(process_name):
    path, sections = processes()[process_name]
    directives = sections[""]
    assert re.search(r"^\s*tag\s+\S", directives, re.M), f"{path}: no tag"
    labels = re.findall(r"^\s*label\s+['\"](\w+)['\"]", directives, re.M)
    assert len(labels) == 1 and labels[0] in LABELS, f"{path}: needs one label of {sorted(LABELS)}, has {labels}"
    assert process_name.startswith("ISONET_"), f"{path}: processes are named ISONET_<STEP>"
    assert re.search(r"tuple\s+val\(meta\)", sections.get("input", "")) or re.search(
        r"^\s*val\s+meta\b", sections.get("input", ""), re.M), f"{path}: inputs carry the meta map"
    outputs = [line for line in sections["output"].splitlines() if line.strip()]
    for line in outputs:
        assert re.search(r"\bemit:\s*\w+", line), f"{path}: unnamed output: {line.strip()}"
    assert any("val(meta)" in line for line in outputs), f"{path}: outputs carry the meta map"
    # a `when:` block is deprecated in newer Nextflow: the workflow filters channels instead
    assert "when" not in sections, f"{path}: a when: block; filter the channel in the workflow instead"
    assert "task.ext.args" in sections["script"], f"{path}: script ignores task.ext.args"
    assert "stub" in sections, f"{path}: no stub: block"
    assert "params." not in _scan(_read(path))[0], f"{path}: modules must not read params"


@pytest.mark.parametrize("process_name", _module_params())
def test_module_stub_touches_every_output(process_name):
    path, sections = processes()[process_name]
    stub = sections["stub"]
    for m in re.finditer(r"\bpath\(\s*['\"]([^'\"]+)['\"]", sections["output"]):
        pattern = m.group(1)
        if "includeInputs" in sections["output"][m.start():m.start() + 200].split("\n")[0]:
            continue  # a pass-through of an input, nothing to make
        fixed = re.split(r"[*?\[{]", pattern)[0]
        anchor = fixed if fixed else pattern.split("*")[-1]
        assert anchor and anchor in stub, f"{path}: stub does not make output {pattern!r}"


@pytest.mark.parametrize("process_name", _module_params())
def test_module_reports_its_version(process_name):
    path, sections = processes()[process_name]
    step = _step_of(sections["script"])
    versions = re.search(rf"eval\(['\"]set -o pipefail; isonet-{step} --version[^)]*\),\s*topic:\s*versions",
                         sections["output"])
    in_state = f"isonet-{step} --version" in sections["script"] and "versions.yml" in sections["script"]
    assert versions or in_state, f"{path}: report isonet-{step} --version in the versions topic (or a versions file)"


# --------------------------------------------------------------------------------------------
# Wiring
# --------------------------------------------------------------------------------------------

def test_includes_resolve_to_defined_processes_and_workflows():
    for path in WORKFLOW_FILES:
        for name, _alias, target in _includes(path):
            assert target.exists(), f"{path}: include of {name} from a missing file {target}"
            text = _read(target)
            defined = set(_blocks(text, "process")) | set(_blocks(text, "workflow"))
            defined |= set(re.findall(r"^def\s+(\w+)\s*\(", text, re.M))  # functions
            assert name in defined, f"{path}: {name} is not defined in {target.relative_to(ROOT)}"


def test_every_call_is_included_or_defined_and_every_include_is_used():
    for path in WORKFLOW_FILES:
        text = _read(path)
        local = set(_blocks(text, "workflow")) - {""}
        included = {alias for _, alias, _ in _includes(path)}
        bodies = "\n".join(_scan(body)[1] for body in _blocks(text, "workflow").values())
        called = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*(?:\(|\.recurse\s*\()", bodies))
        unknown = called - included - local
        assert not unknown, f"{path}: calls {sorted(unknown)} without include or definition"
        unused = {a for a in included if not re.search(rf"\b{a}\b", bodies)}
        assert not unused, f"{path}: includes {sorted(unused)} but never uses them"


def test_every_module_is_used():
    used = set(aliases().values())
    unused = set(processes()) - used
    assert not unused, f"modules never included by a workflow: {sorted(unused)}"


def _emit_is_used(alias: str, emit: str, workflows: str) -> bool:
    return re.search(rf"\b{alias}\.out\.{emit}\b", workflows) is not None


def _published(alias: str) -> bool:
    blocks = _config_blocks_for(alias)
    return any("publishDir" in b and not re.search(r"enabled\s*:\s*false", b) for b in blocks)


def test_every_emit_is_consumed_or_published():
    workflows = _workflow_code()
    topics = set(re.findall(r"[cC]hannel\.topic\(\s*['\"](\w+)['\"]", workflows))
    problems = []
    for alias, name in aliases().items():
        _, sections = processes()[name]
        for line in sections["output"].splitlines():
            emit = re.search(r"\bemit:\s*(\w+)", line)
            if not emit:
                continue
            topic = re.search(r"\btopic:\s*(\w+)", line)
            if topic and topic.group(1) in topics:
                continue
            if _emit_is_used(alias, emit.group(1), workflows) or _published(alias):
                continue
            problems.append(f"{alias}.out.{emit.group(1)}")
    assert not problems, f"emits neither consumed by a workflow nor published: {problems}"
    # the same check on a process nobody reads and nobody publishes fails
    assert not _emit_is_used("ISONET_NOT_THERE", "x", workflows) and not _published("ISONET_NOT_THERE")


def test_subworkflow_emits_are_consumed():
    workflows = _workflow_code()
    for path in SUBWORKFLOW_FILES:
        for name, body in _blocks(_read(path), "workflow").items():
            emits = re.findall(r"^\s*(\w+)\s*=", _sections(body).get("emit", ""), re.M)
            recursed = re.search(rf"\b{name}\s*\.\s*recurse\s*\(", workflows)
            for emit in emits:
                assert recursed or _emit_is_used(name, emit, workflows), f"{path}: {name}.out.{emit} is never used"


# --------------------------------------------------------------------------------------------
# The recursive refine
# --------------------------------------------------------------------------------------------

def _recursions() -> list[tuple[str, str]]:
    """(workflow or process name, file text) for every `.recurse(` call."""
    found = []
    for path in WORKFLOW_FILES:
        code = _scan(_read(path))[1]
        for m in re.finditer(r"\b([A-Z][A-Z0-9_]+)\s*\.\s*recurse\s*\(", code):
            found.append((m.group(1), path))
    return found


def test_refine_is_a_recursion_with_one_state_in_and_out():
    recursions = _recursions()
    assert [name for name, _ in recursions] == ["REFINE_STEP"], recursions
    name, path = recursions[0]
    code = _scan(_read(path))[0]
    assert re.search(r"REFINE_STEP\s*\.recurse\(\s*\w+\s*\)\s*\.(times|until)\s*[({]", code), \
        "recurse needs .times() or .until()"
    assert re.search(r"^nextflow\.preview\.recursion\s*=\s*true\s*$", _scan(_read(ROOT / "main.nf"))[0], re.M)
    sections = _sections(_blocks(_read(path), "workflow")[name])
    takes = [w for w in sections["take"].split() if w]
    emits = re.findall(r"^\s*(\w+)\s*=", sections["emit"], re.M)
    assert len(takes) == 1 and len(emits) == 1, "a recursive workflow takes and emits the same single state"
    main = _scan(sections["main"])[1]
    used = [op for op in REDUCTION_OPERATORS if re.search(rf"\.\s*{op}\s*[({{]", main)]
    assert not used, f"{name} uses {used}: reduction operators make a recursion hang"
    called = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*\(", main))
    assert called, f"{name} calls no process"
    for alias in called:
        _, proc = processes()[aliases()[alias]]
        assert "topic:" not in proc["output"], f"{alias} is in a recursion and cannot have topic: outputs"
        script = proc["script"]
        assert "--continue" in script and "--until-iter" in script, f"{alias}: one iteration per task"
        assert re.search(r"cp -rL\s+\S+\s+refine_state", script), \
            f"{alias}: must copy the staged state, not write into it"


def test_recursion_check_catches_a_reduction():
    """Control: the operator scan used above sees a collect() in a workflow body."""
    main = _scan("    ch = ISONET_X(state)\n    out = ch.map { v -> v }.collect()\n")[1]
    assert [op for op in REDUCTION_OPERATORS if re.search(rf"\.\s*{op}\s*[({{]", main)] == ["collect"]


# --------------------------------------------------------------------------------------------
# Params: nextflow.config <-> nextflow_schema.json <-> use
# --------------------------------------------------------------------------------------------

def _literal(text: str):
    text = text.strip()
    if text == "null" or text.startswith("new java.util.Date()"):
        return None  # null, or a value made at launch (the schema gives no default for it)
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"'[^']*'|\"[^\"]*\"", text):
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        return float(text)


@cache
def config_params() -> dict[str, object]:
    code, masked = _scan(_read(ROOT / "nextflow.config"))
    m = re.search(r"^params\s*\{", masked, re.M)
    assert m, "nextflow.config has no params {} block"
    body = code[m.end():_closing_brace(masked, m.end() - 1)]
    found = {}
    for line in body.splitlines():
        if line.strip():
            name, _, value = line.partition("=")
            assert _, f"unreadable params line: {line!r}"
            assert name.strip() not in found, f"param {name.strip()} defined twice"
            found[name.strip()] = _literal(value)
    return found


@cache
def schema() -> dict:
    return json.loads(_read(ROOT / "nextflow_schema.json"))


def schema_params() -> dict[str, dict]:
    found = {}
    for group in schema()["$defs"].values():
        for name, spec in group["properties"].items():
            assert name not in found, f"{name} in two schema groups"
            found[name] = spec
    return found


def _params_used() -> set[str]:
    used = set()
    for path in [*NF_FILES, *CONFIG_FILES]:
        code, masked = _scan(_read(path))
        used |= set(re.findall(r"\bparams\.(\w+)", code))
        used |= set(re.findall(r"\bopts\.(\w+)", code))  # the workflow's take: of the params map
        if path.name != "nextflow.config":
            for m in re.finditer(r"\bparams\s*\{", masked):
                body = code[m.end():_closing_brace(masked, m.end() - 1)]
                used |= set(re.findall(r"^\s*(\w+)\s*=", body, re.M))
    return used


def test_params_defined_in_config_and_schema_match():
    config, described = config_params(), schema_params()
    assert set(config) == set(described), (
        f"only in nextflow.config: {sorted(set(config) - set(described))}; "
        f"only in nextflow_schema.json: {sorted(set(described) - set(config))}")
    for name, default in config.items():
        assert described[name].get("default") == default, \
            f"{name}: default {default!r} in nextflow.config, {described[name].get('default')!r} in the schema"


def test_every_param_used_is_defined_and_every_param_defined_is_used():
    used, config = _params_used(), config_params()
    assert not used - set(config), f"params used but not defined in nextflow.config: {sorted(used - set(config))}"
    assert not set(config) - used, f"params defined but never used: {sorted(set(config) - used)}"


def test_schema_is_nf_schema_draft_2020_12():
    data = schema()
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert data["type"] == "object"
    refs = [item["$ref"] for item in data["allOf"]]
    assert refs == [f"#/$defs/{name}" for name in data["$defs"]], "allOf must reference every $defs group"
    types = {"string", "number", "integer", "boolean"}
    for name, group in data["$defs"].items():
        assert group.get("title") and group.get("description") and group.get("help_text"), f"group {name}"
        assert group["type"] == "object"
        for param, spec in group["properties"].items():
            assert spec.get("type") in types, f"{param}: type"
            assert spec.get("description") and spec.get("help_text"), f"{param}: description and help_text"
            if "default" in spec:
                kind = {"string": str, "boolean": bool, "integer": int, "number": (int, float)}[spec["type"]]
                bool_as_number = spec["type"] != "boolean" and isinstance(spec["default"], bool)
                assert isinstance(spec["default"], kind) and not bool_as_number, param
            if "enum" in spec and "default" in spec:
                assert spec["default"] in spec["enum"], param
    described = schema_params()
    assert described["pretrained_model"]["format"] == "file-path" and described["pretrained_model"]["exists"] is True
    assert described["input"]["exists"] is True
    assert described["input"]["format"] in ("path", "file-path", "directory-path")


def test_params_check_catches_a_missing_param():
    """Control: a config/schema pair that differ by one param fails the same comparison."""
    config = dict(config_params())
    config.pop("cone_angle")
    assert set(config) != set(schema_params())


# --------------------------------------------------------------------------------------------
# Configs and profiles
# --------------------------------------------------------------------------------------------

def test_base_config_labels_retries_and_gpu():
    text = _scan(_read(ROOT / "conf" / "base.config"))[0]
    labels = _selectors(text, "withLabel")
    assert LABELS <= set(labels), f"base.config labels: {sorted(labels)}"
    for label in LABELS:
        assert re.search(r"memory\s*=\s*\{[^}]*task\.attempt", labels[label]), f"{label}: memory grows per attempt"
        assert re.search(r"time\s*=\s*\{[^}]*task\.attempt", labels[label]), f"{label}: time grows per attempt"
    strategy = re.search(r"errorStrategy\s*=\s*\{(.*)\}", text).group(1)
    assert "130..145" in strategy and "104" in strategy and "175" in strategy and "50001" in strategy
    assert "'retry'" in strategy and "'finish'" in strategy
    gpu = labels["process_gpu"]
    assert re.search(r"accelerator\s*=", gpu) and "1" in gpu
    assert "'--nv'" in gpu and "'--gpus all'" in gpu and "containerOptions" in gpu
    assert re.search(r"\['singularity',\s*'apptainer'\]", gpu) and "== 'docker' ? '--gpus all'" in gpu
    # Podman before 5.0 takes --gpus and passes no GPU: CDI's device name is the option that works
    assert "== 'podman' ? '--device nvidia.com/gpu=all'" in gpu


def test_profiles_shell_env_and_reports():
    code, masked = _scan(_read(ROOT / "nextflow.config"))
    m = re.search(r"^profiles\s*\{", masked, re.M)
    body = masked[m.end():_closing_brace(masked, m.end() - 1)]
    _, inner = _scan(code[m.end():_closing_brace(masked, m.end() - 1)])
    names = set()
    depth = 0
    for line in inner.splitlines():
        if depth == 0:
            hit = re.match(r"\s*(\w+)\s*\{", line)
            if hit:
                names.add(hit.group(1))
        depth += line.count("{") - line.count("}")
    wanted = {"docker", "podman", "apptainer", "singularity", "slurm", "awsbatch", "google", "k8s", "gpu", "test",
              "test_gpu"}
    assert wanted <= names, f"missing profiles: {sorted(wanted - names)}"
    assert body
    assert re.search(r"process\.executor\s*=\s*'google-batch'", code)
    assert re.search(r"process\.executor\s*=\s*'awsbatch'", code)
    assert re.search(r"process\.executor\s*=\s*'slurm'", code)
    assert re.search(r"process\.executor\s*=\s*'k8s'", code)
    shell = re.search(r"process\.shell\s*=\s*\[(.*)\]", code).group(1)
    assert "pipefail" in shell and ("-euo" in shell or ("'-e'" in shell and "'-u'" in shell))
    env = re.search(r"^env\s*\{(.*?)^\}", code, re.M | re.S).group(1)
    assert re.search(r"PYTHONNOUSERSITE\s*=\s*'1'", env) and "KERAS_BACKEND" in env
    for scope in ("timeline", "report", "trace", "dag"):
        block = re.search(rf"^{scope}\s*\{{(.*?)^\}}", code, re.M | re.S)
        assert block and "enabled   = true" in block.group(1) and "/pipeline_info/" in block.group(1), scope
    includes = re.findall(r"includeConfig\s+'([^']+)'", code)
    assert {"conf/base.config", "conf/modules.config", "conf/test.config"} <= set(includes)
    for include in includes:
        assert (ROOT / include).exists(), include
    test = _scan(_read(ROOT / "conf" / "test.config"))[0]
    assert re.search(r"phantom\s*=\s*true", test) and "resourceLimits" in test


def test_every_process_alias_has_args_and_publishing_in_modules_config():
    for alias in aliases():
        blocks = _config_blocks_for(alias)
        assert any("ext.args" in b for b in blocks), f"{alias}: no ext.args in conf/modules.config"
        assert any("publishDir" in b for b in blocks), f"{alias}: no publishDir in conf/modules.config"
    known = set(aliases())
    for pattern in _selectors(_read(ROOT / "conf" / "modules.config"), "withName"):
        assert any(re.fullmatch(pattern, a) for a in known), f"withName '{pattern}' matches no process"


# --------------------------------------------------------------------------------------------
# bin/: the launchers Nextflow puts on each task's PATH
# --------------------------------------------------------------------------------------------

def test_bin_has_an_executable_launcher_per_step():
    from isonet_steps.cli.main import STEPS

    for name in ["isonet", *(f"isonet-{step}" for step in STEPS)]:
        path = ROOT / "bin" / name
        assert path.is_file(), f"bin/{name} is missing"
        assert path.stat().st_mode & stat.S_IXUSR, f"bin/{name} is not executable (chmod +x)"
        assert _read(path).startswith("#!/usr/bin/env bash\n"), f"bin/{name}: bash shebang"
        if name != "isonet":
            assert re.search(rf'/isonet" {name[len("isonet-"):]} "\$@"', _read(path)), \
                f"bin/{name} must run `isonet {name[7:]}`"


def test_bin_launcher_runs_the_checkout_copy(tmp_path):
    """A copy of the checkout with a changed version: its launcher must run that copy."""
    shutil.copytree(ROOT / "bin", tmp_path / "bin")
    shutil.copytree(ROOT / "isonet_steps", tmp_path / "isonet_steps",
                    ignore=shutil.ignore_patterns("__pycache__"))
    init = tmp_path / "isonet_steps" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]*"', '__version__ = "9.9.9+checkout"', init.read_text()))
    env = dict(os.environ, ISONET_PYTHON=sys.executable)
    env.pop("PYTHONPATH", None)
    for launcher, expected in (("isonet", "isonet, version 9.9.9+checkout"),
                               ("isonet-prepare-star", "isonet-prepare-star, version 9.9.9+checkout")):
        run = subprocess.run([str(tmp_path / "bin" / launcher), "--version"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == expected
    run = subprocess.run([str(tmp_path / "bin" / "isonet-prepare-star"), str(tmp_path / "nowhere")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "nowhere" in run.stderr


# --------------------------------------------------------------------------------------------
# Groovy 4 parse of every .nf and .config file
# --------------------------------------------------------------------------------------------

def _groovy(*files: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / ".ci" / "groovy_parse.sh"), *files], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _need_groovy():
    probe = subprocess.run(["bash", "-c", f"source <(sed -n '/^find_jar()/,/^}}/p' "
                                          f"{ROOT / '.ci' / 'groovy_parse.sh'}); "
                                          f"root={ROOT}; find_jar"],
                           capture_output=True, text=True)
    if (probe.returncode != 0 and not os.environ.get("GROOVY_JAR")) or not shutil.which("java"):
        message = ("Groovy jar or java missing: npm install --prefix \"$HOME/.cache/npm-groovy-lint\" "
                   "npm-groovy-lint@18.0.0 (and a JDK 17)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_every_nextflow_file_parses_as_groovy():
    _need_groovy()
    run = _groovy()
    assert run.returncode == 0, run.stdout + run.stderr
    parsed = set(re.findall(r"^ok\s+(\S+)", run.stdout, re.M))
    expected = {str(p.relative_to(ROOT)) for p in [*NF_FILES, *CONFIG_FILES]}
    assert expected <= parsed, f"not parsed: {sorted(expected - parsed)}"


def test_groovy_parse_fails_on_a_brace_error(tmp_path):
    _need_groovy()
    good = tmp_path / "good.nf"
    good.write_text("process A {\n    input:\n    tuple val(meta), path(x)\n    output:\n"
                    "    path 'y', emit: y\n    script:\n    \"\"\"\n    touch y\n    \"\"\"\n}\n"
                    "workflow B {\n    take:\n    ch\n    main:\n    A(ch)\n    emit:\n    y = A.out.y\n}\n")
    broken = tmp_path / "broken.nf"
    broken.write_text(good.read_text().replace("    output:\n", "    output: {\n", 1))
    config = tmp_path / "broken.config"
    config.write_text("process {\n    withLabel: process_low {\n        cpus = 2\n}\n")
    assert _groovy(str(good)).returncode == 0
    for path in (broken, config):
        run = _groovy(str(path))
        assert run.returncode == 1 and f"FAILED  {path}" in run.stdout, run.stdout


def test_run_parameters_are_pipeline_parameters():
    """`isonet run` and its params files use the Nextflow params names (gpus is one-machine only)."""
    import re

    from isonet_steps.io.params import PARAMS

    config = (ROOT / "nextflow.config").read_text()
    block = config[config.index("params {"):]
    defined = set(re.findall(r"^\s+(\w+)\s*=", block, re.M))
    missing = [p.name for p in PARAMS if p.name not in defined and p.name != "gpus"]
    assert not missing, f"isonet run parameters missing from nextflow.config params: {missing}"
