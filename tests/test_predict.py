"""Tiled prediction: seamless blending, size rules, out-of-memory retries, and the predict command."""

from __future__ import annotations

import os

import mrcfile
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from isonet_steps.core.normalize import from_network, to_network
from isonet_steps.io.errors import InputError
from isonet_steps.network.inference import (
    check_tiling,
    corrected_file_name,
    predict_cubes,
    predict_tiled,
    predict_tomogram,
)
from isonet_steps.network.tiles import blend_ramp, plan_tiles


def identity(batch: np.ndarray) -> np.ndarray:
    assert batch.dtype == np.float32 and batch.ndim == 5 and batch.shape[-1] == 1
    return batch.copy()


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(37, 101, 75)).astype(np.float32)


# --- size rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cube", "crop", "depth", "words"),
    [
        (60, 96, 3, ["--cube-size 60", "divisible by 8"]),
        (64, 100, 3, ["--crop-size 100", "divisible by 8"]),
        (64, 68, 2, ["at least cube + 8", "--crop-size"]),
        (64, 64, 3, ["at least cube + 8"]),
        (64, 75, 0, ["even"]),
    ],
)
def test_refused_sizes_name_the_rule(cube, crop, depth, words):
    with pytest.raises(InputError) as info:
        check_tiling(cube, crop, depth)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(("cube", "crop", "margin", "overlap"),
                         [(64, 80, 4, 8), (64, 96, 8, 16), (16, 24, 2, 4), (8, 64, 24, 8)])
def test_accepted_sizes_keep_a_margin_and_blend(cube, crop, margin, overlap):
    assert check_tiling(cube, crop, 3) == (margin, overlap)
    plan = plan_tiles((50, 60, 70), cube, crop)
    assert plan.margin + plan.keep == crop - plan.margin  # kept region centred, margin voxels from each face
    # enough tiles: n voxels need (tiles - 1) strides plus one kept region; one tile fewer would not do
    for n, k in zip(plan.shape, plan.n_tiles):
        assert (k - 1) * cube + plan.keep >= n
        assert k == 1 or (k - 2) * cube + plan.keep < n


def test_ramps_are_complementary():
    for overlap in (2, 8, 16):
        ramp = blend_ramp(overlap)
        np.testing.assert_allclose(ramp + ramp[::-1], 1.0, atol=1e-12)
        assert np.all(np.diff(ramp) > 0)


# --- blending -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cube", "crop"), [(16, 32), (16, 48), (24, 40)])
def test_identity_returns_the_volume_for_odd_shapes(volume, cube, crop):
    out = predict_tiled(identity, volume, cube=cube, crop=crop, batch_size=4, progress_bar=False)
    assert out.shape == volume.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, volume, atol=1e-5)


@pytest.mark.parametrize(("cube", "crop"), [(16, 32), (16, 48)])
def test_constant_offset_has_no_seams(volume, cube, crop):
    out = predict_tiled(lambda b: b + 2.5, volume, cube=cube, crop=crop, batch_size=3, progress_bar=False)
    np.testing.assert_allclose(out - volume, 2.5, atol=1e-5)


def test_tile_faces_never_reach_the_output(volume):
    cube, crop = 16, 32
    margin = check_tiling(cube, crop, 2)[0]

    def poisoned_faces(batch):
        out = batch.copy()
        inner = out[:, margin:crop - margin, margin:crop - margin, margin:crop - margin].copy()
        out[:] = np.nan
        out[:, margin:crop - margin, margin:crop - margin, margin:crop - margin] = inner
        return out

    out = predict_tiled(poisoned_faces, volume, cube=cube, crop=crop, batch_size=4, progress_bar=False)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, volume, atol=1e-5)


def test_neighbouring_tiles_are_cross_faded(volume):
    # each tile returns its own index: the output must change smoothly (no jumps of a whole index)
    calls = {"n": 0}

    def tile_number(batch):
        out = np.empty_like(batch)
        for i in range(len(batch)):
            out[i] = calls["n"]
            calls["n"] += 1
        return out

    flat = np.zeros((16, 16, 200), np.float32)
    out = predict_tiled(tile_number, flat, cube=16, crop=32, batch_size=1, progress_bar=False)
    steps = np.abs(np.diff(out[8, 8, :]))
    assert steps.max() < 0.5  # a hard seam would jump by 1 between neighbours along x


def test_predict_tomogram_normalises_and_keeps_contrast(volume):
    tomo = volume * 3.0 + 10.0
    out = predict_tomogram(identity, tomo, cube=16, crop=32, batch_size=4, progress=False)
    np.testing.assert_allclose(out, from_network(to_network(tomo)), atol=1e-5)
    assert np.corrcoef(out.ravel(), tomo.ravel())[0, 1] > 0.999  # protein still dark


def test_batch_size_larger_than_the_tile_count(volume):
    small = volume[:10, :12, :14]
    out = predict_tiled(identity, small, cube=16, crop=32, batch_size=64, progress_bar=False)
    np.testing.assert_allclose(out, small, atol=1e-5)


# --- out of memory ------------------------------------------------------------------------------


class ResourceExhaustedError(RuntimeError):
    """Named like TensorFlow's out-of-memory error."""


def _limited(max_batch: int, seen: list[int]):
    def fn(batch):
        if len(batch) > max_batch:
            raise ResourceExhaustedError(f"OOM when allocating tensor with shape [{len(batch)},32,32,32,16]")
        seen.append(len(batch))
        return batch + 1.0

    return fn


def test_out_of_memory_halves_the_batch(volume):
    seen: list[int] = []
    out = predict_tiled(_limited(2, seen), volume, cube=16, crop=32, batch_size=8, progress_bar=False)
    np.testing.assert_allclose(out, volume + 1.0, atol=1e-5)
    assert set(seen) == {2}


def test_out_of_memory_at_batch_one_is_refused_with_advice(volume):
    with pytest.raises(InputError, match="--crop-size"):
        predict_tiled(_limited(0, []), volume, cube=16, crop=32, batch_size=4, progress_bar=False)


def test_other_errors_are_not_retried(volume):
    def broken(batch):
        raise ValueError("wrong shape")

    with pytest.raises(ValueError, match="wrong shape"):
        predict_tiled(broken, volume, cube=16, crop=32, batch_size=4, progress_bar=False)


def test_predict_cubes_in_batches_with_halving():
    cubes = np.random.default_rng(4).normal(size=(7, 16, 16, 16)).astype(np.float32)
    seen: list[int] = []
    out = predict_cubes(_limited(2, seen), cubes, batch_size=4)
    assert out.shape == cubes.shape
    np.testing.assert_allclose(out, cubes + 1.0)
    assert set(seen) == {2} and len(seen) == 4  # 7 cubes in 4 calls of 2 (last one filled up)
    assert predict_cubes(identity, cubes[:0], batch_size=4).shape == (0, 16, 16, 16)


def test_corrected_file_names():
    assert corrected_file_name("TS_1.rec.mrc") == "TS_1.rec_corrected.mrc"
    assert corrected_file_name("tomos/a.mrc", half=1) == "a_half1_corrected.mrc"
    assert corrected_file_name("noext") == "noext_corrected.mrc"


# --- the predict command ------------------------------------------------------------------------

keras = pytest.importorskip("keras")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tomogram with dark blobs, 7.5 Å voxels, and a tomograms.star naming it; cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)
    saved = dict(os.environ)  # the command sets device variables: restore them all afterwards
    monkeypatch.setenv("ISONET_NO_PROGRESS", "1")
    rng = np.random.default_rng(5)
    tomo = rng.normal(size=(24, 40, 36)).astype(np.float32)
    z, y, x = np.mgrid[:24, :40, :36]
    tomo -= 4.0 * np.exp(-((z - 12) ** 2 + (y - 20) ** 2 + (x - 15) ** 2) / 18.0)
    (tmp_path / "tomos").mkdir()
    with mrcfile.new(tmp_path / "tomos" / "TS_01.rec.mrc") as mrc:
        mrc.set_data(tomo)
        mrc.voxel_size = 7.5
    from isonet_steps.io.star import write_star

    table = pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["tomos/TS_01.rec.mrc"], "rlnPixelSize": [7.5],
                          "rlnDeconvTomoName": ["deconv/missing.mrc"]})
    write_star(table, tmp_path / "tomograms.star")
    yield tmp_path, tomo
    os.environ.clear()
    os.environ.update(saved)


def _run(args):
    from isonet_steps.cli.predict import command

    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)


def test_command_writes_corrected_tomogram_and_star(project, identity_model):
    root, tomo = project
    result = _run(["tomograms.star", identity_model, "--output-dir", "corrected", "--cube-size", 16,
                   "--crop-size", 32, "--gpus", "cpu"])
    assert result.exit_code == 0, result.output
    out = root / "corrected" / "TS_01.rec_corrected.mrc"
    with mrcfile.open(out) as mrc:
        data = mrc.data.copy()
        assert float(mrc.voxel_size.x) == pytest.approx(7.5)
    assert data.shape == tomo.shape
    assert np.corrcoef(data.ravel(), tomo.ravel())[0, 1] > 0.99  # identity network: same picture, protein dark
    from isonet_steps.io.star import read_tomogram_star

    table = read_tomogram_star(root / "tomograms.star")
    assert table["rlnCorrectedTomoName"].iloc[0] == "corrected/TS_01.rec_corrected.mrc"
    assert not list((root / "corrected").glob(".*"))  # no temporary files left


def test_command_half_and_output_star(project, identity_model):
    root, _ = project
    before = (root / "tomograms.star").read_text()
    result = _run(["tomograms.star", identity_model, "--output_dir", "halves", "--cube_size", 16, "--crop_size", 24,
                   "--half", 1, "--output-star", "out.star", "--gpus", "", "--batch-size", 2, "--tomo-idx", "1"])
    assert result.exit_code == 0, result.output
    assert (root / "halves" / "TS_01.rec_half1_corrected.mrc").exists()
    from isonet_steps.io.star import read_tomogram_star

    table = read_tomogram_star(root / "out.star")
    assert table["rlnCorrectedTomoHalf1"].iloc[0] == "halves/TS_01.rec_half1_corrected.mrc"
    assert (root / "tomograms.star").read_text() == before  # input STAR untouched


def _assert_refused(result, root, *words):
    assert result.exit_code != 0
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    for word in words:
        assert word in text
    assert "Traceback" not in text
    assert not (root / "corrected").exists()


def test_command_missing_model(project):
    root, _ = project
    result = _run(["tomograms.star", root / "nope.keras", "--output-dir", "corrected", "--cube-size", 16,
                   "--crop-size", 32])
    _assert_refused(result, root, "nope.keras", "model file not found")


def test_command_unreadable_model(project):
    root, _ = project
    (root / "broken.keras").write_bytes(b"PK\x03\x04 truncated")
    result = _run(["tomograms.star", "broken.keras", "--output-dir", "corrected", "--cube-size", 16,
                   "--crop-size", 32, "--gpus", "cpu"])
    _assert_refused(result, root, "broken.keras", "cannot load the model")


def test_command_refuses_crop_too_small(project, identity_model):
    root, _ = project
    result = _run(["tomograms.star", identity_model, "--output-dir", "corrected", "--cube-size", 16,
                   "--crop-size", 20])
    _assert_refused(result, root, "--crop-size 20", "cube + 8")


def test_command_refuses_sizes_the_network_cannot_halve(project, identity_model):
    root, _ = project
    result = _run(["tomograms.star", identity_model, "--output-dir", "corrected", "--cube-size", 16,
                   "--crop-size", 34, "--gpus", "cpu"])
    _assert_refused(result, root, "--crop-size 34", "divisible by 4")


def test_command_missing_tomogram(project, identity_model):
    root, _ = project
    (root / "tomos" / "TS_01.rec.mrc").unlink()
    result = _run(["tomograms.star", identity_model, "--output-dir", "corrected"])
    _assert_refused(result, root, "TS_01.rec.mrc", "does not exist")


@pytest.mark.bfloat16
def test_bfloat16_prediction_stays_close_and_sums_in_float32():
    from isonet_steps.io.errors import InputError
    from isonet_steps.network.inference import model_predict_fn
    from isonet_steps.network.unet import build_unet

    model = build_unet(depth=2, filter_base=4)
    rng = np.random.default_rng(7)
    for layer in model.layers:  # He-scaled weights so the correction is not negligibly small
        if isinstance(layer, (keras.layers.Conv3D, keras.layers.Conv3DTranspose)):
            kernel, bias = layer.get_weights()
            in_axis = -1 if isinstance(layer, keras.layers.Conv3DTranspose) else -2
            fan_in = np.prod(kernel.shape[:3]) * kernel.shape[in_axis]
            layer.set_weights([rng.normal(scale=np.sqrt(2.0 / fan_in), size=kernel.shape).astype(np.float32), bias])
    x = np.random.default_rng(6).normal(size=(2, 16, 16, 16, 1)).astype(np.float32)
    exact = model_predict_fn(model)(x)
    fast_fn = model_predict_fn(model, precision="mixed")
    fast = fast_fn(x)
    correction = exact - x
    assert correction.std() > 1e-2
    assert np.abs(fast - exact).std() < 0.05 * correction.std()
    copy = fast_fn.model
    assert copy.get_layer("enc0_conv0").compute_dtype == "bfloat16"
    assert copy.get_layer("residual").compute_dtype == "float32"
    with pytest.raises(InputError, match="precision"):
        model_predict_fn(model, precision="float16")


@pytest.mark.parametrize(("shape", "cube", "crop"), [((7, 20, 33), 16, 32), ((40, 9, 64), 8, 24), ((3, 5, 2), 16, 48)])
def test_tiles_read_the_volume_as_if_mirror_padded(shape, cube, crop):
    from isonet_steps.network.tiles import plan_tiles, tile_at

    volume = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    plan = plan_tiles(shape, cube, crop)
    padded = np.pad(volume, list(zip(plan.pad_before, plan.pad_after)), mode="symmetric")
    for (z, y, x), _ in plan.tiles():
        np.testing.assert_array_equal(tile_at(volume, plan, (z, y, x)), padded[z:z + crop, y:y + crop, x:x + crop])


def test_predict_tomogram_in_place_gives_the_same_result(volume):
    tomo = -3.0 * volume + 1.0
    expected = predict_tomogram(identity, tomo.copy(), cube=16, crop=32, batch_size=4, progress=False)
    owned = tomo.astype(np.float32)
    out = predict_tomogram(identity, owned, cube=16, crop=32, batch_size=4, progress=False, overwrite_input=True)
    np.testing.assert_array_equal(out, expected)
    assert not np.allclose(owned, tomo)  # it was used as the network's scaled input
    kept = tomo.astype(np.float32)
    predict_tomogram(identity, kept, cube=16, crop=32, batch_size=4, progress=False)
    np.testing.assert_array_equal(kept, tomo.astype(np.float32))  # by default the input is left alone


# --- one tomogram, as a library call ------------------------------------------------------------


@pytest.fixture
def device_environment(monkeypatch):
    """The device set-up writes environment variables: restore them all afterwards."""
    saved = dict(os.environ)
    monkeypatch.setenv("ISONET_NO_PROGRESS", "1")
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_correct_tomogram_corrects_an_array_without_touching_it(tmp_path, identity_model, device_environment):
    from isonet_steps.steps.predict import correct_tomogram

    rng = np.random.default_rng(3)
    tomo = rng.normal(size=(20, 28, 24)).astype(np.float32)
    given = tomo.copy()
    out = correct_tomogram(tomo, tmp_path / "a_corrected.mrc", identity_model, voxel_size=6.5, cube_size=16,
                           crop_size=24, gpus="cpu")
    assert out == tmp_path / "a_corrected.mrc"
    np.testing.assert_array_equal(tomo, given)  # an array given is left as it is
    with mrcfile.open(out) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(6.5)
        assert np.corrcoef(mrc.data.ravel(), tomo.ravel())[0, 1] > 0.99  # identity network


def test_correct_tomogram_checks_a_model_file_against_its_record(tmp_path, identity_model, device_environment):
    import shutil

    from isonet_steps.io.model_record import ModelRecord, write_model_record
    from isonet_steps.steps.predict import Network, correct_tomogram

    model = tmp_path / "m10.keras"
    shutil.copyfile(identity_model, model)
    write_model_record(model, ModelRecord(voxel_size=10.0, cube_size=16, crop_size=24, network={"unet_depth": 2},
                                         precision="float32", wedges=["-60..60°"], noise2noise=False,
                                         deconvolved=False, subtomograms=1, subtomo_digest="0", iteration=1,
                                         iterations=1, software="0"))
    tomo = np.zeros((16, 16, 16), np.float32)
    with pytest.raises(InputError, match=r"voxel size 5 Å is 50.0% off the 10 Å"):
        correct_tomogram(tomo, tmp_path / "x.mrc", model, voxel_size=5.0, cube_size=16, crop_size=24, gpus="cpu")
    assert not (tmp_path / "x.mrc").exists()
    network = Network(model, cube_size=16, crop_size=24, gpus="cpu")
    with pytest.raises(TypeError, match="crop_size"):  # a network brings its own tiles
        correct_tomogram(tomo, tmp_path / "x.mrc", network, crop_size=32)
