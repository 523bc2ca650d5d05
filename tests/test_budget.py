"""The demo's time budget: iterations from a step time (given, never timed here), and kept per folder."""

from __future__ import annotations

import json

from isonet_steps.budget import OVERHEAD, iterations_within
from isonet_steps.cli import demo


def test_iterations_are_the_most_that_fit_within_limits():
    per_iteration = 60 * 0.5 * OVERHEAD
    assert iterations_within(5 * per_iteration + 1, 0.5, 60, least=3, most=8) == 5
    assert iterations_within(5 * per_iteration - 1, 0.5, 60, least=3, most=8) == 4
    assert iterations_within(1.0, 0.5, 60, least=3, most=8) == 3  # a slow CPU still corrects visibly
    assert iterations_within(1e6, 0.5, 60, least=3, most=8) == 8  # a fast one does all of the demo


def test_the_demo_plan_is_made_once_per_folder(tmp_path):
    assert demo._planned_iterations(tmp_path, 0) == demo.DEMO["iterations"]  # no budget: all, untimed
    plan = tmp_path / ".isonet" / "demo_plan.json"
    assert json.loads(plan.read_text()) == {"budget_s": 0, "iterations": demo.DEMO["iterations"],
                                            "seconds_per_step": None}
    plan.write_text(json.dumps({"budget_s": 0, "iterations": 5, "seconds_per_step": 1.0}))
    assert demo._planned_iterations(tmp_path, 0) == 5  # a rerun continues the run it started
