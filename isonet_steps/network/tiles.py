"""Apply a trained network to whole tomograms, tile by tile, without seams.

A tomogram is far too large for the network at once, so it is cut into ``crop³`` tiles placed at
a stride of ``cube``. The network's output is least reliable near a tile's faces (its convolutions
see zero padding there), so each tile contributes only its central ``(cube + overlap)³`` region,
which stays ``margin`` voxels inside the tile. Neighbouring regions overlap by ``overlap``
voxels and are cross-faded with complementary raised-cosine ramps (sin² up, cos² down) whose sum
is 1, so the result has neither hard seams nor intensity dips. The volume is extended by
mirroring at its faces so the outermost tiles have context too; there the border tile keeps
full weight (no neighbour to fade into), which saves a tile per axis over IsoNet's scheme.

IsoNet v0.3 keeps ``cube + 18`` (fixed 9-voxel edge, linear ramps), which needs
``crop - cube >= 18`` and so failed on extract's default ``crop = cube + 16``. Here the context
``d = crop - cube`` is split instead: ``overlap = d - 2·(d // 4)`` (at most ``cube``) is blended
and ``margin = (d - overlap) / 2`` on each side is thrown away; ``d = 16`` gives margin 4,
overlap 8; ``d = 32`` gives margin 8, overlap 16.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..io.errors import InputError

__all__ = ["MIN_CONTEXT", "TilePlan", "check_tiling", "blend_ramp", "plan_tiles", "tile_at"]

#: crop - cube must be at least this (it gives a 2-voxel margin and 4 voxels of cross-fade).
MIN_CONTEXT = 8


def check_tiling(cube: int, crop: int, depth: int, *,
                 names: tuple[str, str] = ("--cube-size", "--crop-size"),
                 min_context: int = MIN_CONTEXT) -> tuple[int, int]:
    """Refuse cube/crop sizes that cannot tile a tomogram; returns ``(margin, overlap)``.

    Rules: both sizes divisible by ``2**depth`` (the network sees ``crop³`` tiles and halves them
    ``depth`` times; ``cube`` is the stride), ``crop >= cube + min_context`` and ``crop - cube``
    even. ``names`` are the options the user set them with (``isonet run`` has its own). The
    library's own tiling (:func:`predict_tomogram`, :func:`predict_cubes`) applies the same rules
    with the smallest context that still blends (2 voxels); the commands ask for 8.
    """
    step = 2**depth
    cube_name, crop_name = names
    if cube < 1 or crop < 1:
        raise InputError(f"{cube_name} {cube} / {crop_name} {crop}: sizes must be positive voxel counts.")
    for option, size in ((cube_name, cube), (crop_name, crop)):
        if size % step:
            lower, upper = size - size % step, size - size % step + step
            raise InputError(
                f"{option} {size}: must be divisible by {step} (2**depth for a network of depth {depth}); "
                f"use {lower or upper} or {upper}."
            )
    if crop < cube + min_context:
        raise InputError(
            f"{crop_name} {crop} with {cube_name} {cube}: crop must be at least cube + {min_context} "
            f"(tiles need context to blend without seams); "
            f"use {crop_name} {cube + max(min_context, step, 16)} or larger."
        )
    if (crop - cube) % 2:
        raise InputError(
            f"{crop_name} {crop} with {cube_name} {cube}: crop - cube must be even (equal context on both "
            f"sides); use {crop_name} {crop + 1}."
        )
    return _margin_overlap(cube, crop)


def _margin_overlap(cube: int, crop: int) -> tuple[int, int]:
    context = crop - cube
    overlap = min(context - 2 * (context // 4), cube)
    overlap -= overlap % 2
    return (context - overlap) // 2, overlap


def blend_ramp(overlap: int) -> np.ndarray:
    """Rising weights ``sin²(π/2·(t+½)/overlap)``; ``ramp + ramp[::-1] == 1`` (sin² + cos²)."""
    t = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap
    return np.sin(0.5 * np.pi * t) ** 2


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go along each axis of a volume of ``shape``.

    Along an axis, tile ``k`` is ``[k·cube, k·cube + crop)`` of the volume mirror-padded by
    ``pad_before`` in front; the part ``[margin, margin + cube + overlap)`` of its prediction
    lands on output voxels ``[k·cube, k·cube + cube + overlap)``. Neighbours share ``overlap``
    voxels, cross-faded; at the volume's own faces there is no neighbour and the weight stays 1,
    so ``ceil((n - overlap) / cube)`` tiles suffice (IsoNet's ramps into the mirrored border cost
    ``ceil((n + overlap) / cube)``).
    """

    shape: tuple[int, int, int]
    cube: int
    crop: int
    margin: int
    overlap: int
    n_tiles: tuple[int, int, int]
    pad_before: tuple[int, int, int]
    pad_after: tuple[int, int, int]

    @property
    def keep(self) -> int:
        """Edge of the region each tile contributes: ``cube + overlap``."""
        return self.cube + self.overlap

    @property
    def count(self) -> int:
        """How many tiles the tomogram needs: what predict's run time grows with."""
        return int(np.prod(self.n_tiles))

    def tiles(self) -> Iterator[tuple[tuple[int, int, int], tuple[int, int, int]]]:
        """``(origin, index)`` of every tile, z-major then y then x; origin in padded = output coordinates."""
        nz, ny, nx = self.n_tiles
        c = self.cube
        for kz in range(nz):
            for ky in range(ny):
                for kx in range(nx):
                    yield (kz * c, ky * c, kx * c), (kz, ky, kx)

    def axis_weights(self, axis: int, index: int) -> np.ndarray:
        """1D weights of tile ``index`` along ``axis``: ramps towards neighbours, 1 at the volume's faces."""
        ramp = blend_ramp(self.overlap)
        w = np.ones(self.keep, dtype=np.float64)
        if index > 0:
            w[: self.overlap] = ramp
        if index < self.n_tiles[axis] - 1:
            w[self.keep - self.overlap:] = 1.0 - ramp  # the next tile's rising ramp completes it
        return w.astype(np.float32)

    def weights(self, index: tuple[int, int, int]) -> np.ndarray:
        """Separable blending weights ``(keep, keep, keep)`` of the tile at ``index``."""
        wz, wy, wx = (self.axis_weights(a, i) for a, i in enumerate(index))
        return wz[:, None, None] * wy[None, :, None] * wx[None, None, :]


def plan_tiles(shape: tuple[int, ...], cube: int, crop: int) -> TilePlan:
    """Tiles of ``crop³`` at stride ``cube`` covering ``shape``, blended wherever two meet."""
    margin, overlap = _margin_overlap(cube, crop)
    n_tiles, after = [], []
    for n in shape:
        k = max(1, math.ceil((n - overlap) / cube))
        n_tiles.append(k)
        after.append((k - 1) * cube + crop - n - margin)
    return TilePlan(
        shape=tuple(int(s) for s in shape),  # type: ignore[arg-type]
        cube=cube,
        crop=crop,
        margin=margin,
        overlap=overlap,
        n_tiles=tuple(n_tiles),  # type: ignore[arg-type]
        pad_before=(margin,) * len(shape),  # type: ignore[arg-type]
        pad_after=tuple(after),  # type: ignore[arg-type]
    )


def tile_at(volume: np.ndarray, plan: TilePlan, origin: tuple[int, int, int]) -> np.ndarray:
    """The ``crop³`` tile at ``origin`` (padded coordinates) of ``volume`` as if it were mirror-padded
    (``numpy.pad`` ``symmetric``) by the plan: interior tiles are plain slices, border tiles gather
    mirrored indices. No padded copy of the tomogram is ever made (it would double the memory).
    """
    firsts = [start - before for start, before in zip(origin, plan.pad_before)]
    if all(0 <= f and f + plan.crop <= n for f, n in zip(firsts, volume.shape)):
        return volume[tuple(slice(f, f + plan.crop) for f in firsts)]
    index = []
    for f, n in zip(firsts, volume.shape):
        t = (f + np.arange(plan.crop)) % (2 * n)
        index.append(np.where(t < n, t, 2 * n - 1 - t))
    return volume[np.ix_(*index)]
