"""``isonet demo``'s plan: a synthetic tomogram, small settings that fit a laptop CPU, one pipeline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .pipeline import Pipeline

#: Small settings that finish in under 10 minutes on 2 CPU cores: the real method, scaled down
#: (one network, so the budget goes into a visible correction; --quick adds the gold-standard halves).
#: The wedge is filled iteration by iteration, so the demo spends its time on iterations and
#: on weight updates: one epoch of 80 steps of 2 cubes per iteration (160 of its 1920 pairs) gives
#: a 2-core AVX2-only CPU time for all 8 iterations, and per CPU second corrects more than 40
#: steps of 4 or 20 of 8 (emulated AVX2, missing-wedge correlation gain after 4 iterations: +0.23
#: against +0.12). The former 3 epochs of 20 steps of 8 left that CPU time for 3-4 iterations.
DEMO: dict[str, Any] = dict(number_subtomos=96, cube_size=32, iterations=8, epochs=1, steps_per_epoch=80, batch_size=2,
                            filter_base=16, unet_depth=3, noise_level=(0.05,), noise_start_iter=(6,), halves=False,
                            predict_cube_size=32, predict_crop_size=48, predict_batch_size=8, gpus="cpu")
#: Seconds of refine the demo aims at: on a CPU where 8 iterations take longer, it runs fewer
#: (MIN_ITERATIONS at least). The 2-core AVX2-only CPU of issue #13 (about 0.42 s per step,
#: projected) gets all 8; a CPU twice as slow gets 5. 0 = always all 8.
REFINE_BUDGET_S = 400
MIN_ITERATIONS = 5
#: A one-minute smoke run through every step, the gold-standard halves and FSC included.
QUICK = dict(DEMO, number_subtomos=24, cube_size=16, iterations=2, epochs=1, steps_per_epoch=4, filter_base=4,
             unet_depth=2, noise_start_iter=(2,), predict_cube_size=16, predict_crop_size=32, halves=True)


def demo_pipeline(outdir: str | os.PathLike, *, quick: bool = False, seed: int = 0,
                  time_budget: float = REFINE_BUDGET_S, log_level: str = "info") -> Pipeline:
    """The demo's pipeline over a phantom made once in ``outdir/data`` (ground truth beside it).

    The full demo times one training step here and runs as many iterations as fit ``time_budget``.
    """
    from ..steps.make_phantom import run_make_phantom

    out = Path(outdir)
    data = out / "data"
    if not (data / "tomo.mrc").exists():
        run_make_phantom(data, shape=(32, 96, 96) if quick else (64, 128, 128), seed=seed, snr=0.5, pixel_size=10.0)
    tomos = out / "tomograms"
    tomos.mkdir(parents=True, exist_ok=True)
    link = tomos / "phantom.mrc"
    if not link.exists():
        link.symlink_to(Path("..") / "data" / "tomo.mrc")
    params = dict(QUICK if quick else DEMO, seed=seed, pixel_size=10.0)
    if not quick:
        params["iterations"] = _planned_iterations(out, time_budget)
    return Pipeline(str(tomos), out, params, log_level=log_level, ground_truth=str(data / "ground_truth.mrc"))


def plan_iterations(budget_s: float, step_s: float) -> int:
    """Refine iterations of the demo that fit ``budget_s`` at ``step_s`` seconds per training step."""
    from ..network.budget import iterations_within

    return iterations_within(budget_s, step_s, DEMO["epochs"] * DEMO["steps_per_epoch"],
                             least=MIN_ITERATIONS, most=DEMO["iterations"])


def _planned_iterations(out, budget_s: float) -> int:
    """Iterations that fit ``budget_s`` here, measured once per demo folder and kept (a rerun
    continues the same run instead of re-timing and changing it).
    """
    import json

    from ..io.atomic import write_json
    from ..io.log import get_logger

    plan_path = out / ".isonet" / "demo_plan.json"
    try:
        plan = json.loads(plan_path.read_text())
        if plan.get("budget_s") == budget_s:
            return int(plan["iterations"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if budget_s <= 0:
        iterations, step_s = DEMO["iterations"], None
    else:
        from ..network import devices
        from ..network.budget import seconds_per_step
        from ..network.devices import precision_policy

        devices.configure(DEMO["gpus"])
        with precision_policy(devices.resolve_precision("auto")):
            step_s = seconds_per_step(filter_base=DEMO["filter_base"], depth=DEMO["unet_depth"],
                                      batch_size=DEMO["batch_size"], cube=DEMO["cube_size"])
        iterations = plan_iterations(budget_s, step_s)
        get_logger().info("demo: a training step takes %.2f s here: %d refine iterations fit %.0f s",
                          step_s, iterations, budget_s)
    write_json(plan_path, {"budget_s": budget_s, "iterations": iterations, "seconds_per_step": step_s})
    return iterations
