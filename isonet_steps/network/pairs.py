"""Training pairs for one refine iteration, made in memory on the fly (reference §6.6).

Per subtomogram the measured region comes from the data and the missing wedge from the previous
network prediction ("merged"); each pair is one of the 20 rotations of a merged cube: the target is
its centre cube, the input the same cube after the measured-wedge filter (applied at crop size, then
cropped, which avoids FFT edge effects), plus back-projected noise when the schedule says so.
Noise2noise (even/odd halves, a :class:`~isonet_steps.network.cubes.Cubes` with its second half): a
pair's input is the wedge-filtered rotation of one half's merged cube and its target the same
rotation of the other half's, in both directions, with no added noise.
Each subtomogram has its own :class:`~isonet_steps.core.wedge.Wedge` (its range, or its recorded
angles when extract gave a tilt-angle file), so a series with a gap trains with the gap as missing;
an ``(N, 2)`` array of ranges is still accepted. Every batch is a pure function of (seed, iteration,
epoch, step), so a resumed run sees exactly the batches an uninterrupted run would, and batches can
be made ahead in a background thread.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core.noise import make_noise_cubes
from ..core.normalize import percentile_normalize
from ..core.rotations import ROTATIONS, rotate
from ..core.wedge import Wedge, measured_part, missing_part
from .cubes import Cubes

__all__ = ["as_wedges", "merge_with_prediction", "merge_halves_with_predictions", "center_crop", "PairPlan",
           "make_batch", "make_noise2noise_batch", "BatchStream", "FORWARD", "BACKWARD"]


def center_crop(volume: np.ndarray, size: int) -> np.ndarray:
    """The central ``size``³ of the last three axes (IsoNet: start = crop//2 − size//2)."""
    n = volume.shape[-1]
    start = n // 2 - size // 2
    sl = slice(start, start + size)
    return volume[..., sl, sl, sl]


#: Per-cube wedges: Wedges, or an ``(N, 2)`` array of (tilt_min, tilt_max) ranges.
WedgesLike = Sequence[Wedge] | np.ndarray


def as_wedges(tilts: WedgesLike) -> list[Wedge]:
    """One :class:`Wedge` per cube; an ``(N, 2)`` array of ranges becomes range wedges (the same masks)."""
    if isinstance(tilts, np.ndarray):
        return [Wedge.from_range(float(lo), float(hi)) for lo, hi in np.asarray(tilts, dtype=float).reshape(-1, 2)]
    return list(tilts)


def _groups(wedges: list[Wedge]) -> list[tuple[Wedge, np.ndarray]]:
    """The distinct wedges with a mask of the cubes that have each, ordered by range then angles.

    The order (and so the random noise drawn per group) is that of ``np.unique`` over range rows,
    which keeps range-only batches as they were before wedges carried angles.
    """
    distinct = sorted(set(wedges), key=lambda w: (w.tilt_min, w.tilt_max, w.angles is not None, w.angles or ()))
    return [(w, np.array([v == w for v in wedges], dtype=bool)) for w in distinct]


def merge_with_prediction(original: np.ndarray, prediction: np.ndarray, wedge: Wedge) -> np.ndarray:
    """Measured region (of ``wedge``) from ``original``, missing wedge from ``prediction`` (both in network space)."""
    return percentile_normalize(measured_part(original, wedge) + missing_part(prediction, wedge))


def merge_halves_with_predictions(first: np.ndarray, second: np.ndarray, first_prediction: np.ndarray,
                                  second_prediction: np.ndarray, wedge: Wedge) -> np.ndarray:
    """:func:`merge_with_prediction` for both halves of a box, each with its own prediction, rescaled
    together like :func:`~isonet_steps.network.cubes.halves_to_network` (one range for both); ``(2, c, c, c)``.
    """
    return merge_with_prediction(np.stack([first, second]), np.stack([first_prediction, second_prediction]), wedge)


#: The direction column of a noise2noise pair: input from half 1 and target from half 2, or the reverse.
FORWARD, BACKWARD = 0, 1


@dataclass(frozen=True)
class PairPlan:
    """Which (subtomogram, rotation) pairs train and validate in one iteration, and how they batch."""

    train: np.ndarray  # (n, 2) int: box, rotation; noise2noise (n, 3): box, rotation, FORWARD or BACKWARD
    validation: np.ndarray  # (m, 2) or (m, 3)
    batch_size: int
    steps_per_epoch: int
    validation_steps: int

    @classmethod
    def make(cls, subtomo_indices: np.ndarray, batch_size: int, steps_per_epoch: int,
             rng: np.random.Generator) -> PairPlan:
        """All 20 rotations of every chosen subtomogram, 10 % (at least one batch) held out."""
        pairs = np.array([(s, r) for s in subtomo_indices for r in range(len(ROTATIONS))], dtype=np.int64)
        pairs = pairs[rng.permutation(len(pairs))]
        n_val = max(int(0.1 * len(pairs)), min(batch_size, len(pairs) // 2), 1)
        validation, train = pairs[:n_val], pairs[n_val:]
        validation_steps = max(1, int(np.ceil(0.1 * steps_per_epoch)))
        return cls(train, validation, batch_size, steps_per_epoch, validation_steps)

    def across_halves(self) -> PairPlan:
        """Noise2noise: every (box, rotation) pair becomes two rows (box, rotation, direction), half 1 →
        half 2 (:data:`FORWARD`) and half 2 → half 1 (:data:`BACKWARD`).

        A held-out pair keeps both its directions held out, so validation never sees a box and
        rotation that trained in the other direction.
        """
        def both_ways(pairs: np.ndarray) -> np.ndarray:
            box, rotation = pairs[:, 0], pairs[:, 1]
            forward = np.stack([box, rotation, np.full_like(box, FORWARD)], axis=1)
            backward = np.stack([box, rotation, np.full_like(box, BACKWARD)], axis=1)
            return np.stack([forward, backward], axis=1).reshape(-1, 3)

        return PairPlan(both_ways(self.train), both_ways(self.validation), self.batch_size, self.steps_per_epoch,
                        self.validation_steps)

    def batch_pairs(self, epoch: int, step: int, *, validation: bool = False, seed: int = 0) -> np.ndarray:
        """Pairs of batch ``step`` of ``epoch``: walk a per-pass shuffled order of the pair list."""
        pool = self.validation if validation else self.train
        per_epoch = self.validation_steps if validation else self.steps_per_epoch
        start = (epoch * per_epoch + step) * self.batch_size
        idx = np.arange(start, start + self.batch_size)
        passes = idx // len(pool)
        out = np.empty((self.batch_size, pool.shape[1]), dtype=np.int64)
        for p in np.unique(passes):
            order = _pass_order(seed, validation, int(p), len(pool))
            sel = passes == p
            out[sel] = pool[order[idx[sel] % len(pool)]]
        return out

    def boxes_drawn(self, epochs: int, seed: int = 0) -> np.ndarray:
        """Sorted indices of every box that ``epochs`` epochs of :meth:`batch_pairs` read (training and
        validation; noise2noise: both halves of each), so only those need a missing-wedge fill.

        Batches walk one running index per pool, so a plan with a smaller batch and proportionally more
        steps (out-of-memory fallback) or fewer epochs (early stop) reads a subset of these.
        """
        drawn = []
        for validation, per_epoch in ((False, self.steps_per_epoch), (True, self.validation_steps)):
            pool = self.validation if validation else self.train
            total = epochs * per_epoch * self.batch_size
            for p in range(-(-total // len(pool))):
                count = min(len(pool), total - p * len(pool))
                drawn.append(pool[_pass_order(seed, validation, p, len(pool))[:count]])
        return np.unique(np.concatenate(drawn)[:, 0])


def _pass_order(seed: int, validation: bool, index: int, size: int) -> np.ndarray:
    """The shuffled order of one pass through a pair pool: fixed by (seed, pool, pass)."""
    return np.random.default_rng([seed, int(validation), index]).permutation(size)


def make_batch(merged: np.ndarray, tilts: WedgesLike, pairs: np.ndarray, cube: int, noise_level: float,
               noise_mode: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets ``(B, cube, cube, cube, 1)`` for the given (subtomogram, rotation) pairs;
    ``tilts``: each subtomogram's wedge (or range row), which both the filter and the noise use.
    """
    rotated = np.stack([rotate(merged[s], r) for s, r in pairs])
    wedges = as_wedges(tilts)
    pair_wedges = [wedges[s] for s in pairs[:, 0]]
    x = _wedge_filtered_crops(rotated, pair_wedges, cube)
    if noise_level > 1e-7:
        for wedge, sel in _groups(pair_wedges):  # the order _wedge_filtered_crops filled them in
            noise = make_noise_cubes(int(sel.sum()), cube, wedge, mode=noise_mode, rng=rng)
            x[sel] += np.float32(noise_level) * noise
    y = np.ascontiguousarray(center_crop(rotated, cube))
    return x[..., None], y[..., None]


def make_noise2noise_batch(cubes: Cubes, tilts: WedgesLike, pairs: np.ndarray,
                           cube: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise2noise inputs and targets ``(B, cube, cube, cube, 1)`` for (box, rotation, direction) rows:
    the input is the wedge-filtered rotation of one half's merged cube, the target the same rotation
    of the other half's, so the target's noise is independent of the input's. No noise is added.
    """
    if cubes.second is None:
        raise ValueError("noise2noise pairs need cubes with a second half")
    halves = (cubes.first, cubes.second)
    rotated_inputs = np.stack([rotate(halves[d][b], r) for b, r, d in pairs])
    wedges = as_wedges(tilts)
    x = _wedge_filtered_crops(rotated_inputs, [wedges[b] for b in pairs[:, 0]], cube)
    y = np.stack([center_crop(rotate(halves[1 - d][b], r), cube) for b, r, d in pairs])
    return x[..., None], np.ascontiguousarray(y, dtype=np.float32)[..., None]


def _wedge_filtered_crops(rotated: np.ndarray, pair_wedges: list[Wedge], cube: int) -> np.ndarray:
    """The measured part of each rotated cube (its own wedge), filtered at crop size, then centre-cropped."""
    x = np.empty((len(rotated), cube, cube, cube), dtype=np.float32)
    for wedge, sel in _groups(pair_wedges):
        x[sel] = center_crop(measured_part(rotated[sel], wedge), cube)
    return x


class BatchStream:
    """Makes the batches of one iteration ahead of the trainer, in background threads.

    Every batch is fixed by its (epoch, step) key and its own seeded generator, so the batches are
    the same whatever the number of ``threads`` and the order they finish in. One thread suffices
    on the CPU (the network shares its cores); a GPU trains faster than one thread makes 64³ pairs,
    so refine gives it more (the FFTs and rotations release the GIL). A plan of three-column rows
    (:meth:`PairPlan.across_halves`) makes noise2noise batches, for which ``noise_level`` is unused.
    """

    def __init__(self, merged: Cubes, tilts: WedgesLike, plan: PairPlan, cube: int, noise_level: float,
                 noise_mode: str, seed: int, *, ahead: int | None = None, threads: int = 1):
        self.merged, self.tilts, self.plan, self.cube = merged, as_wedges(tilts), plan, cube
        self.noise_level, self.noise_mode, self.seed = noise_level, noise_mode, seed
        threads = max(1, int(threads))
        self.ahead = ahead if ahead is not None else 2 * threads + 1
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="isonet-pairs")
        self._futures: dict[tuple[int, int, bool], concurrent.futures.Future] = {}

    def _make(self, epoch: int, step: int, validation: bool):
        pairs = self.plan.batch_pairs(epoch, step, validation=validation, seed=self.seed)
        if pairs.shape[1] == 3:
            return make_noise2noise_batch(self.merged, self.tilts, pairs, self.cube)
        rng = np.random.default_rng([self.seed, epoch, step, int(validation), 7])
        return make_batch(self.merged.first, self.tilts, pairs, self.cube, self.noise_level, self.noise_mode, rng)

    def _schedule(self, key: tuple[int, int, bool]) -> None:
        if key not in self._futures:
            self._futures[key] = self._pool.submit(self._make, *key)

    def _next_keys(self, key: tuple[int, int, bool]) -> list[tuple[int, int, bool]]:
        epoch, step, validation = key
        keys = []
        per = self.plan.validation_steps if validation else self.plan.steps_per_epoch
        for _ in range(self.ahead):
            step += 1
            if step >= per:
                if validation:
                    epoch, step, validation = epoch + 1, 0, False
                else:
                    step, validation = 0, True
                per = self.plan.validation_steps if validation else self.plan.steps_per_epoch
            keys.append((epoch, step, validation))
        return keys

    def get(self, epoch: int, step: int, validation: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Batch (epoch, step); also starts making the next few."""
        key = (epoch, step, validation)
        self._schedule(key)
        for nxt in self._next_keys(key):
            self._schedule(nxt)
        return self._futures.pop(key).result()

    def close(self) -> None:
        """Stop the worker threads, so an ended (or failed) training does not leave them making pairs."""
        for f in self._futures.values():
            f.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
