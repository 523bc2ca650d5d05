"""The 20 cube rotations IsoNet trains on (reference §6.8).

All 24 proper rotations of a cube except the four that leave the missing-wedge geometry unchanged
(identity and the 180° turns about X, Y and Z): each remaining one moves the missing wedge of the
data to a new direction, so the network learns to restore a wedge from the directions where the
data is complete. Exact 90° turns: no interpolation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ROTATIONS", "rotate", "rotation_matrix"]

# (first plane, turns), (second plane, turns) on [Z, Y, X] axes, numpy rot90 sense.
ROTATIONS: tuple[tuple[tuple[tuple[int, int], int], tuple[tuple[int, int], int]], ...] = (
    (((0, 1), 1), ((1, 2), 0)), (((0, 1), 1), ((1, 2), 1)), (((0, 2), 1), ((1, 2), 0)), (((0, 2), 1), ((1, 2), 1)),
    (((0, 1), 1), ((1, 2), 2)), (((0, 1), 1), ((1, 2), 3)), (((0, 2), 1), ((1, 2), 2)), (((0, 2), 1), ((1, 2), 3)),
    (((0, 1), 3), ((1, 2), 0)), (((0, 1), 3), ((1, 2), 1)), (((0, 2), 3), ((1, 2), 0)), (((0, 2), 3), ((1, 2), 1)),
    (((0, 1), 3), ((1, 2), 2)), (((0, 1), 3), ((1, 2), 3)), (((0, 2), 3), ((1, 2), 2)), (((0, 2), 3), ((1, 2), 3)),
    (((1, 2), 1), ((0, 2), 0)), (((1, 2), 1), ((0, 2), 2)), (((1, 2), 3), ((0, 2), 0)), (((1, 2), 3), ((0, 2), 2)),
)


def rotate(volume: np.ndarray, index: int) -> np.ndarray:
    """Rotation ``index`` (0..19) of a cube ``[Z, Y, X]`` (or ``[..., Z, Y, X]``), as a copy."""
    (plane1, k1), (plane2, k2) = ROTATIONS[index]
    offset = volume.ndim - 3
    first = np.rot90(volume, k1, axes=(plane1[0] + offset, plane1[1] + offset))
    return np.ascontiguousarray(np.rot90(first, k2, axes=(plane2[0] + offset, plane2[1] + offset)))


def rotation_matrix(index: int) -> np.ndarray:
    """The 3×3 integer matrix of rotation ``index``, read off its action on axis-aligned probes."""
    probe = np.zeros((3, 3, 3), dtype=np.int8)
    columns = []
    for axis in range(3):
        p = probe.copy()
        idx = [1, 1, 1]
        idx[axis] = 2
        p[tuple(idx)] = 1
        q = rotate(p, index)
        where = np.argwhere(q == 1)[0] - 1
        columns.append(where)
    return np.stack(columns, axis=1)
