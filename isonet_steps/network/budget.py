"""Fitting refine into a time budget from a measured training step (the demo's promise on any CPU).

Why: a training step of the demo's network takes 0.5 s on an AVX-512 CPU and three times that on an
AVX2-only one, so a fixed number of iterations cannot keep "under 10 minutes" on both without
wasting the fast one. The step is timed on this machine, now (other work sharing the cores
included), and the number of iterations is the most that fits.
"""

from __future__ import annotations

import math
import time

__all__ = ["seconds_per_step", "iterations_within", "OVERHEAD"]

#: Refine's time per iteration over its bare training steps: batch-norm calibration, validation,
#: predicting the subtomograms it draws, saving, first-step tracing. For the demo's plan (one epoch of
#: 80 steps of 2 cubes; measured when all 96 subtomograms of 48³ were predicted per iteration, now
#: about 80 of them and none after the last), in CPU seconds on emulated AVX2: 80 steps x 0.5 s,
#: calibration 8 x 0.16 s, validation 8 x 0.1 s, predicting the subtomograms 14 s, so 1.4; 1.45 with
#: saving and merging (an upper bound now). With fewer steps per iteration the fixed part weighs more.
OVERHEAD = 1.45


def seconds_per_step(*, filter_base: int, depth: int, batch_size: int, cube: int, steps: int = 3) -> float:
    """Seconds per training step of the refine network on this CPU when it has the cores to itself:
    the lesser of the median wall time and the process's CPU time over its cores (after one step to
    trace). Other work sharing the cores stretches the wall time, hardly the CPU time, so a busy
    moment does not cut the demo's iterations on a fast CPU.
    """
    import keras
    import numpy as np

    from ..io.params import default
    from .layout import for_backend
    from .unet import build_unet, compile_unet

    model = compile_unet(for_backend(build_unet(depth=depth, filter_base=filter_base)), default("learning_rate"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size, cube, cube, cube, 1)).astype(np.float32)
    y = (x + 0.1 * rng.normal(size=x.shape)).astype(np.float32)
    model.train_on_batch(x, y)
    from .devices import cpu_count

    times = []
    cpu_start = time.process_time()
    for _ in range(max(1, steps)):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    cpu_per_step = (time.process_time() - cpu_start) / max(1, steps) / cpu_count()
    del model
    keras.backend.clear_session()
    return float(min(np.median(times), cpu_per_step))


def iterations_within(budget_s: float, step_s: float, steps_per_iteration: int, *, least: int, most: int) -> int:
    """Iterations whose estimated refine time (steps x step time x :data:`OVERHEAD`) fits the budget,
    clipped to ``least..most``.
    """
    per_iteration = steps_per_iteration * step_s * OVERHEAD
    fitting = math.floor(budget_s / per_iteration) if per_iteration > 0 else most
    return int(min(most, max(least, fitting)))
