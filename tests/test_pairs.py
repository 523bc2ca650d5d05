"""Training pairs: content in Fourier space, rotations, determinism."""

import numpy as np

from isonet_steps.core.normalize import percentile_normalize
from isonet_steps.core.rotations import rotate
from isonet_steps.core.wedge import Wedge, measured_part, missing_part
from isonet_steps.network.cubes import Cubes
from isonet_steps.network.pairs import BatchStream, PairPlan, center_crop, make_batch, merge_with_prediction

RANGE = Wedge.from_range(-60, 60)


def _corr(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_merge_takes_measured_from_data_and_missing_from_prediction():
    rng = np.random.default_rng(0)
    orig = rng.standard_normal((24, 24, 24)).astype(np.float32)
    pred = rng.standard_normal((24, 24, 24)).astype(np.float32)
    merged = merge_with_prediction(orig, pred, RANGE)
    assert _corr(measured_part(merged, RANGE), measured_part(orig, RANGE)) > 0.9999
    assert _corr(missing_part(merged, RANGE), missing_part(pred, RANGE)) > 0.9999
    assert abs(_corr(missing_part(merged, RANGE), missing_part(orig, RANGE))) < 0.1


def test_pair_input_is_the_wedge_filtered_rotation_and_target_the_rotation():
    rng = np.random.default_rng(1)
    merged = rng.standard_normal((3, 24, 24, 24)).astype(np.float32)
    tilts = np.array([[-60, 60]] * 3, dtype=float)
    pairs = np.array([[0, 0], [2, 7], [1, 19]])
    x, y = make_batch(merged, tilts, pairs, 16, 0.0, "noFilter", rng)
    assert x.shape == y.shape == (3, 16, 16, 16, 1)
    for k, (s, r) in enumerate(pairs):
        rot = rotate(merged[s], r)
        assert np.allclose(y[k, ..., 0], center_crop(rot, 16))
        assert np.allclose(x[k, ..., 0], center_crop(measured_part(rot, RANGE), 16), atol=1e-5)
        # the input lost the missing wedge (at crop size): its missing part is tiny vs the target's
        xfull = measured_part(rot, RANGE)
        assert np.abs(missing_part(xfull, RANGE)).max() < 1e-4
        assert np.std(missing_part(rot, RANGE)) > 0.3


def test_noise_goes_on_the_input_only():
    rng = np.random.default_rng(2)
    merged = rng.standard_normal((2, 24, 24, 24)).astype(np.float32)
    tilts = np.array([[-60, 60]] * 2, dtype=float)
    pairs = np.array([[0, 3], [1, 4]])
    x0, y0 = make_batch(merged, tilts, pairs, 16, 0.0, "noFilter", np.random.default_rng(9))
    x1, y1 = make_batch(merged, tilts, pairs, 16, 0.5, "noFilter", np.random.default_rng(9))
    assert np.array_equal(y0, y1)
    added = x1 - x0
    assert abs(added.std() - 0.5) < 0.05


def test_plan_covers_all_rotations_and_holds_out_validation():
    plan = PairPlan.make(np.arange(5), 4, 10, np.random.default_rng(0))
    train = {tuple(p) for p in plan.train}
    val = {tuple(p) for p in plan.validation}
    assert not train & val
    assert len(train | val) == 100
    assert len(val) == 10
    b1 = plan.batch_pairs(0, 3, seed=1)
    assert np.array_equal(b1, plan.batch_pairs(0, 3, seed=1))
    seen = np.concatenate([plan.batch_pairs(0, s, seed=1) for s in range(10)])
    assert len({tuple(p) for p in seen}) >= 38  # 40 draws from 90 pairs: (almost) no repeats in a pass


def test_batches_are_a_function_of_their_index():
    rng = np.random.default_rng(3)
    merged = np.stack([percentile_normalize(rng.standard_normal((16, 16, 16))) for _ in range(4)])
    tilts = np.array([[-60, 60]] * 4, dtype=float)
    plan = PairPlan.make(np.arange(4), 2, 3, np.random.default_rng(0))
    a = BatchStream(Cubes(merged), tilts, plan, 8, 0.1, "ramp", seed=5)
    b = BatchStream(Cubes(merged), tilts, plan, 8, 0.1, "ramp", seed=5)
    c = BatchStream(Cubes(merged), tilts, plan, 8, 0.1, "ramp", seed=5, threads=3)  # several makers, any order
    try:
        first = [a.get(0, s) for s in range(3)]
        later = b.get(0, 2)  # out of order, fresh stream
        assert np.array_equal(first[2][0], later[0]) and np.array_equal(first[2][1], later[1])
        threaded = [c.get(0, s) for s in range(3)] + [c.get(0, 0, validation=True)]
        for (x, y), (x2, y2) in zip(first, threaded):
            assert np.array_equal(x, x2) and np.array_equal(y, y2)
        assert not np.array_equal(threaded[3][0], first[0][0])  # validation batches are others
    finally:
        a.close()
        b.close()
        c.close()


def test_the_cubes_a_plan_draws_are_those_its_batches_read():
    plan = PairPlan.make(np.arange(3, 43), 3, 5, np.random.default_rng(2))
    read = {int(c) for epoch in range(2) for validation, steps in ((False, 5), (True, plan.validation_steps))
            for step in range(steps) for c in plan.batch_pairs(epoch, step, validation=validation, seed=7)[:, 0]}
    assert plan.boxes_drawn(2, seed=7).tolist() == sorted(read)
    assert set(plan.boxes_drawn(1, seed=7)) <= read < set(range(3, 43))  # 36 draws of 800 pairs miss some cubes
    # out of memory: batch 1 and twice the steps read a part of what batch 3 reads
    fallback = PairPlan(plan.train, plan.validation, 1, 10, 2 * plan.validation_steps)
    smaller = {int(c) for epoch in range(2) for step in range(10)
               for c in fallback.batch_pairs(epoch, step, seed=7)[:, 0]}
    assert smaller <= read
    both_ways = plan.across_halves()  # noise2noise rows: a box, its rotation and the direction between its halves
    read_both = {int(c) for epoch in range(2) for validation, steps in ((False, 5), (True, plan.validation_steps))
                 for step in range(steps) for c in both_ways.batch_pairs(epoch, step, validation=validation,
                                                                         seed=7)[:, 0]}
    assert both_ways.boxes_drawn(2, seed=7).tolist() == sorted(read_both) and read_both < set(range(3, 43))
