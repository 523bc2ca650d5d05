"""A true bug (not bad input) still gives one line and a non-zero exit; its traceback goes to a file (issue #25)."""

from __future__ import annotations

import pytest

from conftest import invoke


@pytest.mark.parametrize("command, target", [("prepare-star", "isonet_steps.steps.prepare_star.run_prepare_star"),
                                             ("extract", "isonet_steps.steps.extract.run_extract")])
def test_an_unexpected_exception_is_one_line_naming_the_traceback_file(tmp_path, monkeypatch, command, target):
    def broken(*args, **kwargs):
        return {}["no such key"]  # a KeyError deep in a step: a bug

    monkeypatch.setattr(target, broken)
    (tmp_path / "in.star").write_text("data_\n")
    result = invoke([command, tmp_path / "in.star"], cwd=tmp_path)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: isonet-{command} failed unexpectedly (KeyError")
    log = tmp_path / f"isonet-{command}-error.log"
    assert str(log) in lines[0]
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "no such key" in text and "broken" in text


def test_click_usage_errors_and_input_errors_keep_their_status(tmp_path):
    assert invoke(["extract", "--cube-size", "x", "s.star"], cwd=tmp_path).exit_code == 2
    assert invoke(["extract", tmp_path / "missing.star"], cwd=tmp_path).exit_code == 2
    assert not list(tmp_path.glob("*-error.log"))
