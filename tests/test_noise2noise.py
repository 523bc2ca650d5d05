"""Noise2noise on even/odd halves: pairs across the halves, both directions, one scale, and refine's mode."""

import json

import numpy as np
import pytest
from scipy import ndimage

from isonet_steps.core.rotations import rotate
from isonet_steps.core.wedge import Wedge, measured_part, missing_part
from isonet_steps.io.checkpoint import RefineStore
from isonet_steps.io.errors import InputError
from isonet_steps.network.cubes import Cubes, halves_to_network
from isonet_steps.network.pairs import (
    BACKWARD,
    FORWARD,
    BatchStream,
    PairPlan,
    center_crop,
    make_noise2noise_batch,
    merge_halves_with_predictions,
)
from isonet_steps.network.refine import RefineData, RefineSettings, refine


def _corr(a, b):
    return np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]


def _halves(n=3, crop=24, seed=0):
    """Smooth shared signal plus independent white noise per half, like even/odd reconstructions."""
    rng = np.random.default_rng(seed)
    signal = np.stack([ndimage.gaussian_filter(rng.standard_normal((crop,) * 3), 1.5) for _ in range(n)])
    signal = (signal / signal.std()).astype(np.float32)
    first = signal + 0.5 * rng.standard_normal(signal.shape).astype(np.float32)
    second = signal + 0.5 * rng.standard_normal(signal.shape).astype(np.float32)
    return first, second


RANGE = Wedge.from_range(-60, 60)


def _cubes(n=3, crop=24):
    """Half 1's boxes and half 2's, with unrelated random content so every cube is recognisable."""
    both = np.random.default_rng(7).standard_normal((2 * n, crop, crop, crop)).astype(np.float32)
    return Cubes(both[:n], both[n:])


def test_plan_across_halves_pairs_each_box_with_its_other_half_in_both_directions():
    n = 4
    single = PairPlan.make(np.arange(n), 4, 5, np.random.default_rng(0))
    plan = single.across_halves()
    assert plan.train.shape == (2 * len(single.train), 3)
    for rows, base in ((plan.train, single.train), (plan.validation, single.validation)):
        assert set(rows[:, 2].tolist()) == {FORWARD, BACKWARD}  # the target is always the other half's box
        forward = {(b, r) for b, r, d in rows if d == FORWARD}
        backward = {(b, r) for b, r, d in rows if d == BACKWARD}
        assert forward == backward == {(b, r) for b, r in base}  # both directions of every pair
        assert len(rows) == 2 * len(base)
    held_out = {(r[0], r[1]) for r in plan.validation}
    assert not held_out & {(r[0], r[1]) for r in plan.train}  # no box+rotation trains in either direction
    assert plan.batch_pairs(1, 2, seed=4).shape == (4, 3)
    assert np.array_equal(plan.batch_pairs(1, 2, seed=4), plan.batch_pairs(1, 2, seed=4))


def test_noise2noise_target_is_the_same_rotation_of_the_other_half_and_only_the_input_is_filtered():
    n = 3
    cubes = _cubes(n)
    tilts = np.array([[-60.0, 60.0], [-45.0, 50.0], [-60.0, 60.0]])
    rows = np.array([[0, 5, FORWARD], [1, 11, BACKWARD], [2, 19, FORWARD], [2, 0, BACKWARD]])
    x, y = make_noise2noise_batch(cubes, tilts, rows, 16)
    assert x.shape == y.shape == (4, 16, 16, 16, 1) and x.dtype == y.dtype == np.float32
    for k, (b, r, d) in enumerate(rows):
        source, other = (cubes.first, cubes.second) if d == FORWARD else (cubes.second, cubes.first)
        wedge = Wedge.from_range(*tilts[b])
        target = rotate(other[b], r)
        assert np.array_equal(y[k, ..., 0], center_crop(target, 16))  # target: untouched, from the other half
        expected = center_crop(measured_part(rotate(source[b], r), wedge), 16)
        np.testing.assert_allclose(x[k, ..., 0], expected, atol=1e-5)  # input: this half, same rotation, wedge
        assert abs(_corr(x[k], center_crop(rotate(other[b], r), 16))) < 0.1  # nothing of the target's cube
        assert _corr(x[k], center_crop(rotate(source[b], r), 16)) > 0.5
        assert np.std(missing_part(target, wedge)) > 0.3  # the target keeps its missing wedge


def test_noise2noise_stream_is_deterministic_and_adds_no_noise():
    n = 3
    cubes = _cubes(n, crop=16)
    tilts = np.array([[-60.0, 60.0]] * n)
    plan = PairPlan.make(np.arange(n), 4, 3, np.random.default_rng(0)).across_halves()
    streams = [BatchStream(cubes, tilts, plan, 8, 0.5, "ramp", seed=9, threads=t) for t in (1, 1, 3)]
    try:
        first = [streams[0].get(0, s) for s in range(3)]
        again = streams[1].get(0, 2)
        assert all(np.array_equal(a, b) for a, b in zip(first[2], again))
        assert all(np.array_equal(a, b) for (xa, ya), (xb, yb) in zip(first, [streams[2].get(0, s) for s in range(3)])
                   for a, b in ((xa, xb), (ya, yb)))
        rows = plan.batch_pairs(0, 1, seed=9)
        x, y = make_noise2noise_batch(cubes, tilts, rows, 8)
        assert np.array_equal(first[1][0], x) and np.array_equal(first[1][1], y)  # noise level 0.5 ignored
    finally:
        for s in streams:
            s.close()


def test_both_halves_share_one_scale():
    first, second = _halves(1)
    both = halves_to_network(first[0], second[0])
    # one affine map for both halves: their common signal keeps equal values, so the difference is noise only
    lo_hi = [np.percentile(np.concatenate([-first[0].ravel(), -second[0].ravel()]), q) for q in (4, 96)]
    scale = 1.0 / (lo_hi[1] - lo_hi[0])
    np.testing.assert_allclose(both[0], (-first[0] - lo_hi[0]) * scale, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(both[1], (-second[0] - lo_hi[0]) * scale, rtol=1e-4, atol=1e-5)
    merged = merge_halves_with_predictions(both[0], both[1], both[1], both[0], RANGE)
    assert _corr(measured_part(merged[0], RANGE), measured_part(both[0], RANGE)) > 0.9999  # each its own measured part
    assert _corr(missing_part(merged[1], RANGE), missing_part(both[0], RANGE)) > 0.9999  # its prediction's wedge
    ratio = np.std(measured_part(merged[0], RANGE)) / np.std(measured_part(both[0], RANGE))
    rescaled = np.std(measured_part(merged[1], RANGE)) / np.std(measured_part(both[1], RANGE))
    assert abs(rescaled - ratio) < 1e-4  # one rescaling


def _settings(**kw):
    base = dict(iterations=1, epochs=1, steps_per_epoch=2, batch_size=2, filter_base=4, unet_depth=2,
                convs_per_depth=2, seed=3, noise2noise=True)
    base.update(kw)
    return RefineSettings(**base)


def _data(with_second=True):
    first, second = _halves(4)
    return RefineData(subtomos=first, tilts=np.array([[-60.0, 60.0]] * 4), names=[f"e{i}.mrc" for i in range(4)],
                      cube=16, second_half=second if with_second else None,
                      second_names=[f"o{i}.mrc" for i in range(4)] if with_second else None)


def test_refine_in_noise2noise_mode_trains_and_writes_its_model(tmp_path):
    store = RefineStore(tmp_path / "results")
    state = refine(_data(), _settings(), store)
    assert store.final_model_path.exists() and store.model_path(1).exists()
    saved = json.loads(store.state_path.read_text())
    assert saved["completed"] == 1 and saved["settings"]["noise2noise"] is True
    assert saved["data"]["second_names"] == [f"o{i}.mrc" for i in range(4)]
    record = state.iterations[0]
    assert record.noise_level == 0.0 and np.isfinite(record.loss[0]) and np.isfinite(record.val_loss[0])


def test_noise2noise_fills_both_halves_of_every_box_it_draws(tmp_path, monkeypatch):
    import isonet_steps.network.refine.loop as loop_module

    filled = []

    def merged_spy(originals, predictions, wedges, chosen):
        filled.append((chosen, predictions))
        return merge(originals, predictions, wedges, chosen)

    merge = loop_module.merged_cubes
    monkeypatch.setattr(loop_module, "merged_cubes", merged_spy)
    refine(_data(), _settings(iterations=2), RefineStore(tmp_path / "results"))
    boxes, fill = filled[1]  # iteration 2: the first network's predictions
    assert len(fill.halves) == 2 and fill.shape == (4, 24, 24, 24) and 0 < len(boxes) <= 4
    for box in range(4):
        for half in fill.halves:  # half 1's box and the same box in half 2
            assert np.isfinite(half[box]).all() and half[box].any() == (box in boxes)


def test_noise2noise_without_a_second_half_is_one_clear_error(tmp_path):
    store = RefineStore(tmp_path / "results")
    with pytest.raises(InputError, match="both half tomograms"):
        refine(_data(with_second=False), _settings(), store)
    assert not store.model_path(0).exists()


def test_halves_of_different_shapes_are_refused():
    first, second = _halves(3)
    with pytest.raises(InputError, match="same boxes"):
        RefineData(subtomos=first, tilts=np.zeros((3, 2)), names=["a", "b", "c"], cube=16, second_half=second[:2])


def test_single_mode_fingerprint_is_unchanged_by_the_option():
    assert "noise2noise" not in RefineSettings().fingerprint()
    assert RefineSettings(noise2noise=True).fingerprint()["noise2noise"] is True
    assert "second_names" not in _data(with_second=False).fingerprint()


def test_cubes_keep_the_second_half_apart_and_stack_like_the_fill_files():
    first, second = _halves(3)
    cubes = Cubes.from_subtomos(first, second)
    assert len(cubes) == 3 and cubes.noise2noise and cubes.shape == (3, 24, 24, 24)
    for b in range(3):  # each box's halves scaled together, as halves_to_network does
        both = halves_to_network(first[b], second[b])
        assert np.array_equal(cubes.first[b], both[0]) and np.array_equal(cubes.second[b], both[1])
    stacked = cubes.stacked()  # the layout of a saved fill: half 1's boxes, then half 2's
    assert np.array_equal(stacked[:3], cubes.first) and np.array_equal(stacked[3:], cubes.second)
    again = Cubes.from_stacked(stacked, noise2noise=True)
    assert np.array_equal(again.first, cubes.first) and np.array_equal(again.second, cubes.second)
    single = Cubes.from_subtomos(first)
    assert not single.noise2noise and len(single.halves) == 1 and single.stacked() is single.first
    with pytest.raises(ValueError, match="differ in shape"):
        Cubes(cubes.first, cubes.second[:2])
