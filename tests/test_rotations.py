"""The 20 rotations: distinct proper rotations = cube group minus the wedge-preserving Klein group."""

import itertools

import numpy as np

from isonet_steps.core.rotations import ROTATIONS, rotate, rotation_matrix
from isonet_steps.core.wedge import Wedge, wedge_mask_3d


def _all_cube_rotations():
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product([1, -1], repeat=3):
            m = np.zeros((3, 3), dtype=int)
            for i, (p, s) in enumerate(zip(perm, signs)):
                m[i, p] = s
            if round(np.linalg.det(m)) == 1:
                mats.append(m)
    return mats


def test_twenty_distinct_proper_rotations():
    mats = [rotation_matrix(i) for i in range(len(ROTATIONS))]
    assert len(mats) == 20
    assert len({m.tobytes() for m in mats}) == 20
    for m in mats:
        assert round(np.linalg.det(m)) == 1
        assert np.array_equal(m @ m.T, np.eye(3, dtype=int))


def test_they_are_the_cube_group_minus_the_klein_group():
    klein = [np.diag(d) for d in ([1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1])]
    ours = {rotation_matrix(i).tobytes() for i in range(20)}
    allrot = {m.tobytes() for m in _all_cube_rotations()}
    assert len(allrot) == 24
    assert ours == allrot - {k.astype(int).tobytes() for k in klein}


def test_every_rotation_moves_the_wedge_and_the_klein_group_keeps_it():
    n = 16
    mask = np.fft.fftshift(wedge_mask_3d((n, n, n), Wedge.from_range(-60, 60)))[1:, 1:, 1:]  # odd, centred grid
    for i in range(20):
        assert not np.array_equal(rotate(mask, i), mask), i
    for axes in ((0, 1), (0, 2), (1, 2)):
        assert np.array_equal(np.rot90(mask, 2, axes=axes), mask)


def test_rotate_is_exact_and_batched():
    rng = np.random.default_rng(0)
    cubes = rng.standard_normal((2, 8, 8, 8))
    for i in range(20):
        one = rotate(cubes[0], i)
        assert sorted(one.ravel()) == sorted(cubes[0].ravel())
        assert np.array_equal(rotate(cubes, i)[1], rotate(cubes[1], i))
