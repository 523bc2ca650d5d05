"""Picking subtomograms for training: where to cut boxes, and the two gold-standard halves.

IsoNet trains on cubes cut at random places of the sample mask (reference §5). A centre is valid
when its whole ``crop``³ box lies inside the tomogram (no padding): along an axis of length ``n``,
``crop//2 <= c <= n - crop + crop//2``; the box is ``[c - crop//2, c - crop//2 + crop)``.

Departures from IsoNet, on purpose:

- Centres are drawn **without replacement, always**. IsoNet silently draws with replacement when
  the mask has fewer voxels than requested subtomograms; duplicates add no information and, once
  split into gold-standard halves, the same box could sit in both halves and inflate the FSC. Too
  small a mask is therefore an error ("more subtomograms than the mask allows").
- The draw is reproducible: each tomogram gets its own generator from ``(seed, rlnIndex)``, so a
  tomogram's subtomograms do not change when other rows are added or ``--tomo-idx`` selects it.
- Subtomograms are split into two balanced random halves (``rlnRandomSubset`` 1/2) for the
  gold-standard FSC, which IsoNet 1 never shipped. Random halves may share voxels (two boxes
  can overlap), which makes the two networks' training data less than independent; with
  ``split="slabs"`` each half draws its boxes from its own slabs (2·crop wide along X,
  alternating; narrower on small tomograms), so no box of one half overlaps a box of the other.

Functions here work on arrays (a memory-mapped mask is fine: it is read one Z slice at a time).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..io.errors import InputError

__all__ = [
    "check_box_sizes",
    "check_fits",
    "centre_range",
    "count_candidates",
    "pick_centres",
    "crop_box",
    "random_halves",
    "tomogram_rng",
    "SPLITS",
    "slab_width",
    "slab_columns",
    "slab_counts",
    "pick_slab_halves",
    "HalfMask",
]

#: How extract splits subtomograms into the gold-standard halves.
SPLITS = ("random", "slabs")


def check_box_sizes(cube_size: int, crop_size: int | None) -> int:
    """Validate the training cube and the extracted box; return the crop size (default cube + 16)."""
    if cube_size < 8 or cube_size % 8:
        raise InputError(
            f"--cube-size {cube_size} must be a positive multiple of 8 (the U-Net halves it three times); "
            "use e.g. 48, 64 or 96."
        )
    crop = cube_size + 16 if crop_size is None else int(crop_size)
    if crop < cube_size:
        raise InputError(
            f"--crop-size {crop} is smaller than --cube-size {cube_size}; the crop must hold the cube: "
            f"use --crop-size >= {cube_size} (default cube + 16 = {cube_size + 16})."
        )
    return crop


def check_fits(shape: Sequence[int], crop_size: int, cube_size: int, name: str) -> None:
    """The crop box must fit inside the tomogram on every axis."""
    if min(shape) < crop_size:
        dims = "x".join(str(int(s)) for s in shape)
        raise InputError(
            f"{name}: tomogram is {dims} voxels (Z,Y,X), smaller than the {crop_size}-voxel crop box "
            f"(--cube-size {cube_size}); use a smaller --cube-size/--crop-size (below {min(shape) + 1})."
        )


def centre_range(n: int, crop_size: int) -> tuple[int, int]:
    """First and last valid centre index along an axis of length ``n`` (box fully inside)."""
    return crop_size // 2, n - crop_size + crop_size // 2


def _interior(shape: Sequence[int], crop_size: int) -> tuple[slice, slice, slice]:
    return tuple(slice(lo, hi + 1) for lo, hi in (centre_range(int(n), crop_size) for n in shape))  # type: ignore[return-value]


def count_candidates(mask: np.ndarray | HalfMask | None, shape: Sequence[int], crop_size: int) -> np.ndarray:
    """Number of valid centres in each Z slice of the interior (non-zero mask voxels, or all voxels).

    Returns an int64 array with one entry per interior Z slice, used by :func:`pick_centres`.
    """
    zs, ys, xs = _interior(shape, crop_size)
    if mask is None:
        area = (ys.stop - ys.start) * (xs.stop - xs.start)
        return np.full(zs.stop - zs.start, area, dtype=np.int64)
    return np.array([np.count_nonzero(mask[z, ys, xs]) for z in range(zs.start, zs.stop)], dtype=np.int64)


def pick_centres(
    mask: np.ndarray | HalfMask | None,
    shape: Sequence[int],
    crop_size: int,
    number: int,
    rng: np.random.Generator,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """Draw ``number`` distinct valid centres uniformly from the mask; ``(number, 3)`` int [z, y, x].

    Only the ranks of the chosen candidates are drawn, then located slice by slice, so a large
    mask is never expanded into a list of all its voxels. Centres are returned in scan order.
    """
    if counts is None:
        counts = count_candidates(mask, shape, crop_size)
    total = int(counts.sum())
    if number > total:
        raise InputError(
            f"more subtomograms ({number}) than the mask allows ({total} valid centres); "
            f"ask for fewer subtomograms (rlnNumberSubtomo) or use a looser mask."
        )
    if number <= 0:
        return np.zeros((0, 3), dtype=np.int64)
    zs, ys, xs = _interior(shape, crop_size)
    width = xs.stop - xs.start
    ranks = np.sort(rng.choice(total, size=number, replace=False))
    ends = np.cumsum(counts)
    slice_of = np.searchsorted(ends, ranks, side="right")
    centres = np.empty((number, 3), dtype=np.int64)
    for s in np.unique(slice_of):
        chosen = slice_of == s
        within = ranks[chosen] - (ends[s] - counts[s])
        z = zs.start + int(s)
        if mask is None:
            flat = within
        else:
            flat = np.flatnonzero(np.asarray(mask[z, ys, xs]))[within]
        centres[chosen, 0] = z
        centres[chosen, 1] = ys.start + flat // width
        centres[chosen, 2] = xs.start + flat % width
    return centres


def crop_box(volume: np.ndarray, centre: Sequence[int], crop_size: int) -> np.ndarray:
    """The ``crop_size``³ box around ``centre`` as float32 (raw values, no normalisation)."""
    lo = [int(c) - crop_size // 2 for c in centre]
    if any(a < 0 or a + crop_size > n for a, n in zip(lo, volume.shape)):
        raise ValueError(f"box at {tuple(centre)} of size {crop_size} leaves the volume {volume.shape}")
    return np.array(volume[lo[0]:lo[0] + crop_size, lo[1]:lo[1] + crop_size, lo[2]:lo[2] + crop_size], dtype=np.float32)


def random_halves(number: int, rng: np.random.Generator, first: int = 1) -> np.ndarray:
    """Random half labels 1/2, balanced: the counts differ by at most one (the extra goes to ``first``)."""
    other = 2 if first == 1 else 1
    labels = np.resize(np.array([first, other], dtype=np.int64), number)
    return rng.permutation(labels)


def odd_halves(numbers: Sequence[int]) -> list[int]:
    """For tomograms with these subtomogram counts, in run order, the half that gets each one's odd one out.

    The half with fewer subtomograms so far (half 1 on a tie), so the run's halves stay balanced
    however many tomograms there are; a pure function of the counts, so a tomogram extracted on
    its own gets the half it would get in a run of all of them.
    """
    in_half = {1: 0, 2: 0}
    firsts = []
    for number in numbers:
        first = 1 if in_half[1] <= in_half[2] else 2
        in_half[first] += (number + 1) // 2
        in_half[3 - first] += number // 2
        firsts.append(first)
    return firsts


def slab_width(nx: int, crop_size: int) -> int:
    """Width along X of the slabs of a slab split: ``2·crop``, narrowed (down to ``crop``) on
    tomograms under ``4·crop`` wide so that both halves get at least one slab.
    """
    return int(min(2 * crop_size, max(crop_size, nx // 2)))


def slab_columns(nx: int, crop_size: int, half: int) -> np.ndarray:
    """Centre X positions (bool, length ``nx``) whose crop box lies wholly inside a slab of ``half``.

    Slabs (:func:`slab_width` wide along X) alternate between half 1 (even slabs) and half 2 (odd
    slabs); a box never crosses a slab border, so boxes of different halves never share a voxel.
    Of a ``2·crop`` slab, ``crop + 1`` centre columns are usable.
    """
    width = slab_width(nx, crop_size)
    first = np.arange(nx) - crop_size // 2  # the box's first column
    slab = np.floor_divide(first, width)
    inside = (first >= 0) & (first + crop_size <= np.minimum((slab + 1) * width, nx))
    return inside & (slab % 2 == half - 1)


class HalfMask:
    """A mask (or the whole volume, ``mask=None``) restricted to some X columns.

    Indexed like a mask volume as ``[z, y-slice, x-slice]`` (what :func:`count_candidates` and
    :func:`pick_centres` read), so a memory-mapped mask stays on disk.
    """

    def __init__(self, mask: np.ndarray | None, columns: np.ndarray, shape: Sequence[int]):
        self.mask, self.columns, self.shape = mask, np.asarray(columns, dtype=bool), tuple(int(n) for n in shape)

    def __getitem__(self, key) -> np.ndarray:
        """Mask of one ``[z, ys, xs]`` block, false outside this half's columns, read from disk only there."""
        z, ys, xs = key
        allowed = self.columns[xs]
        if self.mask is None:
            rows = len(range(*ys.indices(self.shape[1])))
            return np.broadcast_to(allowed, (rows, len(allowed)))
        return (np.asarray(self.mask[z, ys, xs]) != 0) & allowed


def slab_counts(mask: np.ndarray | None, shape: Sequence[int], crop_size: int) -> dict[int, np.ndarray]:
    """:func:`count_candidates` for each half of a slab split: ``{1: counts, 2: counts}``."""
    return {h: count_candidates(HalfMask(mask, slab_columns(int(shape[2]), crop_size, h), shape), shape, crop_size)
            for h in (1, 2)}


def pick_slab_halves(
    mask: np.ndarray | None,
    shape: Sequence[int],
    crop_size: int,
    number: int,
    rng: np.random.Generator,
    counts: dict[int, np.ndarray],
    first: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(number, 3)`` and half labels drawn half by half, each from its own slabs.

    ``first`` gets the odd one out; ``counts`` come from :func:`slab_counts`. Returned in scan
    order, like :func:`pick_centres`.
    """
    parts, labels = [], []
    for half in (first, 3 - first):
        n = (number + 1) // 2 if half == first else number // 2
        within = HalfMask(mask, slab_columns(int(shape[2]), crop_size, half), shape)
        parts.append(pick_centres(within, shape, crop_size, n, rng, counts=counts[half]))
        labels.append(np.full(n, half, dtype=np.int64))
    centres, halves = np.concatenate(parts), np.concatenate(labels)
    order = np.lexsort((centres[:, 2], centres[:, 1], centres[:, 0]))
    return centres[order], halves[order]


def tomogram_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for one tomogram row: depends only on ``seed`` and the row's rlnIndex."""
    return np.random.default_rng([int(seed), int(index) % 2**32])
