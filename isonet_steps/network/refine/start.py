"""How a refine call starts: its sizes and schedule, the precision, iteration 0 or the run it continues,
and the record each saved model carries of its training.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.noise import noise_schedule
from ...io.checkpoint import RefineStore
from ...io.errors import InputError
from ...io.model_record import ModelRecord
from ...io.refine_state import RefineState
from ..cubes import Cubes
from ..devices import PRECISIONS
from .data import RefineData
from .settings import RefineSettings, default_batch_size, default_steps_per_epoch

__all__ = ["RunPlan", "plan_run", "chosen_precision", "resume_or_start", "model_record", "iteration_seed"]


def iteration_seed(seed: int, iteration: int) -> int:
    """The seed of one iteration's random draws, fixed by the run's seed: a continued run draws the same."""
    return (int(seed) * 1_000_003 + int(iteration) * 7919) % (2**31 - 1)



def chosen_precision(settings: RefineSettings, store: RefineStore, resume: bool) -> str:
    """``auto`` continues in the precision the run started with, else picks by the hardware."""
    from ..devices import resolve_precision

    if settings.precision == "auto" and resume:
        state = store.load_state()
        started = state.precision if state is not None else None
        if started in PRECISIONS and started != "auto":
            return started
    return resolve_precision(settings.precision)


@dataclass
class RunPlan:
    """Sizes and noise schedule of one refine call, fixed before any network is built."""

    n: int
    batch_size: int
    steps: int
    schedule: list[float]
    last: int


def plan_run(data: RefineData, settings: RefineSettings, n_gpus: int, until_iter: int | None) -> RunPlan:
    """Refuse bad settings or data before training; the batch, steps and schedule IsoNet would use."""
    settings.validate()
    data.check(settings)
    n = len(data.subtomos)
    batch_size = settings.batch_size or default_batch_size(n_gpus)
    n_train = settings.select_subtomo_number or n
    steps = settings.steps_per_epoch or default_steps_per_epoch(n_train, batch_size)
    schedule = noise_schedule(settings.iterations, settings.noise_level, settings.noise_start_iter)
    if settings.noise2noise:  # the other half's independent noise replaces the added noise
        schedule = [0.0 for _ in schedule]
    last = settings.iterations if until_iter is None else min(int(until_iter), settings.iterations)
    return RunPlan(n=n, batch_size=batch_size, steps=steps, schedule=schedule, last=last)


def model_record(model, data: RefineData, settings: RefineSettings, iteration: int) -> ModelRecord:
    """What ``model``, saved after ``iteration``, was trained on, written into its file: predict checks it.
    A pretrained model's shape is its own, not the settings'.
    """
    from pathlib import Path

    from ... import __version__
    from ..unet import unet_depth

    if settings.pretrained_model:
        network = {"pretrained_model": Path(settings.pretrained_model).name, "unet_depth": unet_depth(model)}
    else:
        network = {k: getattr(settings, k) for k in ("unet_depth", "filter_base", "convs_per_depth", "kernel",
                                                        "batch_norm", "dropout")}
    network["parameters"] = int(model.count_params())
    return ModelRecord(voxel_size=data.voxel_size, cube_size=data.cube, crop_size=data.crop,
                       network=network, precision=settings.precision,
                       wedges=list(dict.fromkeys(w.describe() for w in data.subtomo_wedges())),
                       noise2noise=settings.noise2noise, deconvolved=data.deconvolved,
                       subtomograms=len(data.subtomos), subtomo_digest=data.digest, iteration=iteration,
                       iterations=settings.iterations, software=__version__)


def _start(data: RefineData, settings: RefineSettings, store: RefineStore, run: RunPlan,
           fingerprint: dict) -> RefineState:
    """Iteration 0: the initial (or pretrained) model and the state, committed."""
    import keras

    from ..devices import distribution_scope
    from ..unet import build_unet, load_model, save_model

    keras.utils.set_random_seed(iteration_seed(settings.seed, 0))
    with distribution_scope():
        if settings.pretrained_model:
            model = load_model(settings.pretrained_model)
        else:
            model = build_unet(depth=settings.unet_depth, filter_base=settings.filter_base,
                               convs_per_depth=settings.convs_per_depth, kernel=settings.kernel,
                               dropout=settings.dropout, batch_norm=settings.batch_norm)
    save_model(model, store.model_path(0), model_record(model, data, settings, 0))
    state = RefineState(completed=0, batch_size=run.batch_size, steps_per_epoch=run.steps,
                        noise_schedule=run.schedule, target_iterations=settings.iterations,
                        settings=fingerprint["settings"], data=fingerprint["data"])
    store.save_state(state)
    return state


def resume_or_start(data: RefineData, settings: RefineSettings, store: RefineStore, run: RunPlan, resume: bool,
                     log) -> tuple[RefineState, Cubes, Cubes | None]:
    """The state to continue from (checked against these settings and data) or a fresh iteration 0;
    with the subtomograms as the network sees them and, for a relaxed fill, the last iteration's fill.
    """
    store.prepare()
    fingerprint = {"settings": settings.fingerprint(), "data": data.fingerprint()}
    state = store.load_state() if resume else None
    if state is not None:
        _check_continuation(state, fingerprint, store)
        log.info("continuing %s after iteration %d", store.dir, state.completed)
    originals = data.cubes()

    if state is None:
        state = _start(data, settings, store, run, fingerprint)
    previous_fill = None
    if settings.fill_relaxation != 1 and state.completed >= 2:  # the next fill builds on it (iteration 3 on)
        previous_fill = Cubes.from_stacked(store.load_fill(state.completed), settings.noise2noise)
    state.noise_schedule = run.schedule
    state.target_iterations = settings.iterations
    return state, originals, previous_fill


def _check_continuation(state: RefineState, fingerprint: dict, store: RefineStore) -> None:
    changed = sorted(k for k in fingerprint["settings"] if state.settings.get(k) != fingerprint["settings"][k])
    if state.data != fingerprint["data"]:
        changed.append("subtomograms")
    if changed:
        raise InputError(
            f"{store.dir}: continuing would mix settings — {', '.join(changed)} differ from the run there; "
            f"rerun with the same settings, or use --no-continue (sets the old folder aside) or a new --result-dir."
        )
    if not store.model_path(state.completed).exists():
        raise InputError(f"{store.model_path(state.completed)}: model of the last finished iteration is missing; "
                         "start over with --no-continue.")
