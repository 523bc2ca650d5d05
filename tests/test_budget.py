"""The demo's time budget: iterations from a step time (given, never timed here), and kept per folder."""

from __future__ import annotations

import json

from isonet_steps.network.budget import OVERHEAD, iterations_within
from isonet_steps.workflow import demo


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


def test_the_demo_plan_follows_the_step_time():
    steps = demo.DEMO["epochs"] * demo.DEMO["steps_per_epoch"]
    budget = demo.REFINE_BUDGET_S
    # the step time at which all iterations just fit: a CPU this fast or faster runs them all
    all_fit = budget / (demo.DEMO["iterations"] * steps * OVERHEAD)
    assert demo.plan_iterations(budget, all_fit * 0.99) == demo.DEMO["iterations"]
    assert demo.plan_iterations(budget, all_fit * 0.2) == demo.DEMO["iterations"]
    assert demo.plan_iterations(budget, all_fit * 1.01) == demo.DEMO["iterations"] - 1
    plans = [demo.plan_iterations(budget, all_fit * f) for f in (0.5, 1.0, 1.2, 1.5, 2.0, 5.0, 50.0)]
    assert plans == sorted(plans, reverse=True), "a slower step never gives more iterations"
    assert plans[-1] == demo.MIN_ITERATIONS  # a very slow CPU still corrects, over its budget
    for f in (1.2, 1.5):  # between the two: the plan's estimated refine time stays within the budget
        step = all_fit * f
        assert demo.plan_iterations(budget, step) * steps * step * OVERHEAD <= budget
