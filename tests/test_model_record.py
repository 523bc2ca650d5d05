"""A saved model records what it was trained on, and predict refuses a tomogram at another voxel size.

The record lives in the ``.keras`` file's metadata.json (isonet_steps/io/model_record.py); refine writes
it into every model it saves, predict (and gold-standard through it) checks each tomogram against it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from conftest import check_bad_input, check_ok, invoke
from isonet_steps.io.errors import InputError
from isonet_steps.io.fingerprint import files_digest
from isonet_steps.io.model_record import ModelRecord, check_fits, read_model_record, write_model_record
from isonet_steps.io.mrc import write_volume
from isonet_steps.io.star import write_star

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[1]

RECORD = ModelRecord(voxel_size=10.0, cube_size=16, crop_size=24,
                     network={"unet_depth": 2, "filter_base": 4, "convs_per_depth": 2, "kernel": 3,
                              "batch_norm": True, "dropout": 0.3},
                     precision="float32", wedges=["-60..60°"], noise2noise=False, deconvolved=True,
                     subtomograms=6, subtomo_digest="0123abcd", iteration=2, iterations=2, software="0.1.0")


def _with_record(model: Path, out: Path, record: ModelRecord) -> Path:
    shutil.copyfile(model, out)
    return write_model_record(out, record)


# --- the record in the file ---------------------------------------------------------------------


def test_record_survives_keras_load_and_our_save(identity_model, tmp_path):
    from isonet_steps.network.unet import load_model, save_model

    assert read_model_record(identity_model) is None  # saved without one
    path = _with_record(identity_model, tmp_path / "m.keras", RECORD)
    assert read_model_record(path) == RECORD
    with zipfile.ZipFile(path) as archive:  # one key more in Keras's own metadata, no extra member
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        metadata = json.loads(archive.read("metadata.json"))
    assert metadata["keras_version"] == keras.__version__ and metadata["isonet_nf"]["voxel_size"] == 10.0
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 16, 1)).astype(np.float32)
    plain, recorded = keras.saving.load_model(identity_model), keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(plain(x)), np.asarray(recorded(x)))
    assert keras.saving.KerasFileEditor(str(path)).metadata["isonet_nf"]["wedges"] == ["-60..60°"]
    again = save_model(load_model(path), tmp_path / "again.keras", dataclasses.replace(RECORD, iteration=3))
    assert read_model_record(again) == dataclasses.replace(RECORD, iteration=3)
    assert not list(tmp_path.glob(".*"))  # no temporary file left


@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_a_recorded_model_loads_under_torch(identity_model, tmp_path):
    path = _with_record(identity_model, tmp_path / "m.keras", RECORD)
    code = f"import keras; m = keras.saving.load_model({str(path)!r}); print(keras.backend.backend(), len(m.layers))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": "-1"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("torch ")


@pytest.mark.parametrize(("change", "words"), [({"voxel_size": None}, "has no voxel_size"),
                                               ({"voxel_size": "10 A"}, "voxel_size is '10 A'"),
                                               ({"deconvolved": 1}, "deconvolved is 1"),
                                               ({"network": []}, "network is []")])
def test_a_damaged_record_is_refused_in_one_line(identity_model, tmp_path, change, words):
    path = tmp_path / "m.keras"
    broken = {**RECORD.to_json(), **change}
    broken = {k: v for k, v in broken.items() if k != "voxel_size" or v is not None}
    with zipfile.ZipFile(identity_model) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "metadata.json":
                data = json.dumps({**json.loads(data), "isonet_nf": broken}).encode()
            dst.writestr(info, data)
    with pytest.raises(InputError, match=r"m\.keras: malformed training record .*re-run refine") as info:
        read_model_record(path)
    assert words in str(info.value)


# --- the check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("voxel_size", "refused"), [(10.0, False), (10.48, False), (9.52, False), (10.52, True),
                                                     (9.48, True), (5.0, True), (0.0, False)])
def test_voxel_size_off_by_more_than_5_percent_is_refused(voxel_size, refused):
    if not refused:
        check_fits(RECORD, voxel_size, True, model="m.keras", where="t.mrc")
        return
    with pytest.raises(InputError) as info:
        check_fits(RECORD, voxel_size, True, model="m.keras", where="t.mrc")
    message = str(info.value)
    assert "\n" not in message
    for words in ("t.mrc", f"{voxel_size:g} Å", "10 Å", "m.keras", "isonet resize --pixel-size-out 10"):
        assert words in message


def test_deconvolved_or_raw_mismatch_warns(caplog):
    with caplog.at_level(logging.WARNING):
        check_fits(RECORD, 10.0, True, model="m.keras", where="t.mrc")
        assert not caplog.records
        check_fits(RECORD, 10.0, False, model="m.keras", where="t.mrc")
    assert "t.mrc: raw tomogram, but the model m.keras was trained on deconvolved ones" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # unknown on either side: nothing to say
        check_fits(dataclasses.replace(RECORD, deconvolved=None), 10.0, False, model="m.keras", where="t.mrc")
        check_fits(RECORD, 10.0, None, model="m.keras", where="t.mrc")
    assert not caplog.records


# --- predict ------------------------------------------------------------------------------------


@pytest.fixture
def five_angstrom(tmp_path):
    """A 5 Å tomogram and its tomograms.star (no deconvolved one)."""
    rng = np.random.default_rng(1)
    write_volume(tmp_path / "tomos" / "TS_01.mrc", rng.normal(size=(24, 32, 32)).astype(np.float32), 5.0)
    write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["tomos/TS_01.mrc"], "rlnPixelSize": [5.0]}),
               tmp_path / "tomograms.star")
    return tmp_path


def _predict(root: Path, model: Path):
    saved = dict(os.environ)  # predict sets device variables
    try:
        return invoke(["predict", "tomograms.star", model, "--output-dir", "corrected", "--cube-size", 16,
                       "--crop-size", 24, "--gpus", "cpu"], cwd=root)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_predict_refuses_a_10_angstrom_model_on_5_angstrom_tomograms(five_angstrom, identity_model):
    model = _with_record(identity_model, five_angstrom / "m10.keras", RECORD)
    line = check_bad_input(_predict(five_angstrom, model), "TS_01.mrc", "5 Å", "10 Å", "m10.keras",
                           "isonet resize --pixel-size-out 10", not_written=[five_angstrom / "corrected"])
    assert "50.0%" in line


def test_gold_standard_refuses_half_models_trained_at_another_voxel_size(five_angstrom, identity_model):
    for half in (1, 2):
        (five_angstrom / "res" / f"half{half}").mkdir(parents=True)
        _with_record(identity_model, five_angstrom / "res" / f"half{half}" / "model_final.keras", RECORD)
    saved = dict(os.environ)
    try:
        result = invoke(["gold-standard", "tomograms.star", "--result-dir", "res", "--output-dir", "gs",
                         "--cube-size", 16, "--crop-size", 24, "--gpus", "cpu"], cwd=five_angstrom)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    check_bad_input(result, "TS_01.mrc", "5 Å", "10 Å", "half1", "isonet resize --pixel-size-out 10")
    assert not list((five_angstrom / "gs").glob("*.mrc"))


def test_predict_runs_a_matching_model_and_warns_on_raw(five_angstrom, identity_model):
    model = _with_record(identity_model, five_angstrom / "m5.keras", dataclasses.replace(RECORD, voxel_size=5.1))
    result = check_ok(_predict(five_angstrom, model))
    with mrcfile.open(five_angstrom / "corrected" / "TS_01_corrected.mrc") as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(5.0)
    assert "TS_01.mrc: raw tomogram, but the model" in result.stderr


def test_a_model_without_record_is_used_with_a_warning(five_angstrom, identity_model):
    result = check_ok(_predict(five_angstrom, identity_model))
    assert (five_angstrom / "corrected" / "TS_01_corrected.mrc").is_file()
    assert "the model has no record of its training" in result.stderr


# --- refine writes it ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Refine (--halves), 2 tiny iterations, on six 10 Å subtomograms cut from deconvolved tomograms."""
    from isonet_steps.network.refine import RefineSettings
    from isonet_steps.steps.refine import run_refine

    root = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        write_volume(root / "subtomo" / f"t_{i:06d}.mrc", rng.normal(size=(24, 24, 24)).astype(np.float32), 10.0)
        rows.append({"rlnSubtomoIndex": i + 1, "rlnImageName": f"subtomo/t_{i:06d}.mrc", "rlnCubeSize": 16,
                     "rlnCropSize": 24, "rlnPixelSize": 10.0, "rlnTiltMin": -50.0, "rlnTiltMax": 60.0,
                     "rlnRandomSubset": 1 + i % 2, "rlnDeconvolved": 1})
    write_star(pd.DataFrame(rows), root / "subtomo.star")
    settings = RefineSettings(iterations=2, epochs=1, steps_per_epoch=1, batch_size=2, filter_base=4, unet_depth=2,
                              convs_per_depth=2, noise_level=(0.1,), noise_start_iter=(2,), precision="float32")
    run_refine(root / "subtomo.star", root / "refine", settings, halves=True)
    return root


def test_refine_records_its_training_in_every_model(trained):
    import isonet_steps
    from isonet_steps.network.unet import build_unet

    parameters = build_unet(depth=2, filter_base=4, convs_per_depth=2).count_params()
    assert parameters > 1000
    for half in (1, 2):
        folder = trained / "refine" / f"half{half}"
        files = [trained / "subtomo" / f"t_{i:06d}.mrc" for i in range(half - 1, 6, 2)]
        expected = ModelRecord(voxel_size=10.0, cube_size=16, crop_size=24,
                               network={"unet_depth": 2, "filter_base": 4, "convs_per_depth": 2, "kernel": 3,
                                        "batch_norm": True, "dropout": 0.3, "parameters": parameters},
                               precision="float32", wedges=["-50..60°"], noise2noise=False, deconvolved=True,
                               subtomograms=3, subtomo_digest=files_digest(files), iteration=2, iterations=2,
                               software=isonet_steps.__version__)
        assert read_model_record(folder / "model_final.keras") == expected
        for iteration in (0, 1, 2):
            assert read_model_record(folder / f"model_iter{iteration:02d}.keras") == dataclasses.replace(
                expected, iteration=iteration)
    one = read_model_record(trained / "refine" / "half1" / "model_final.keras")
    two = read_model_record(trained / "refine" / "half2" / "model_final.keras")
    assert one and two and one.subtomo_digest != two.subtomo_digest  # each half trained on its own boxes


@pytest.mark.parametrize("record", [dataclasses.replace(RECORD, voxel_size=5.0), None])
def test_fine_tuning_a_model_of_another_voxel_size_is_said_and_recorded(trained, identity_model, tmp_path, record):
    from isonet_steps.network.refine import RefineSettings
    from isonet_steps.steps.refine import run_refine

    pretrained = tmp_path / "pre.keras"
    shutil.copyfile(identity_model, pretrained)
    if record is not None:
        write_model_record(pretrained, record)
    settings = RefineSettings(iterations=1, epochs=1, steps_per_epoch=1, batch_size=2, filter_base=16, unet_depth=2,
                              convs_per_depth=2, noise_level=(0.1,), noise_start_iter=(2,), precision="float32",
                              pretrained_model=str(pretrained))
    run_refine(trained / "subtomo.star", tmp_path / "ft", settings)
    log = (tmp_path / "ft" / "refine.log").read_text()
    if record is None:
        assert "pre.keras: the pretrained model has no record of its training" in log
    else:
        assert "voxel size 10 Å is 100.0% off the 5 Å the model" in log and "(fine-tuning goes on)" in log
    network = read_model_record(tmp_path / "ft" / "model_final.keras").network
    assert network == {"pretrained_model": "pre.keras", "unet_depth": 2,  # its own shape, not --filter-base 16's
                       "parameters": keras.saving.load_model(identity_model).count_params()}


def test_the_digest_follows_names_and_contents_not_folder_or_order(tmp_path):
    a, b = tmp_path / "x" / "a.mrc", tmp_path / "x" / "b.mrc"
    a.parent.mkdir()
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    moved = tmp_path / "y"
    shutil.copytree(a.parent, moved)
    assert files_digest([a, b]) == files_digest([moved / "b.mrc", moved / "a.mrc"])
    b.write_bytes(b"tw0")
    assert files_digest([a, b]) != files_digest([moved / "a.mrc", moved / "b.mrc"])
    before = files_digest([moved / "a.mrc", moved / "b.mrc"])
    (moved / "b.mrc").rename(moved / "c.mrc")
    assert files_digest([moved / "a.mrc", moved / "c.mrc"]) != before


def test_extract_records_whether_the_boxes_are_deconvolved(tmp_path, masked_tomo_star, phantom_small):
    from isonet_steps.io.star import read_subtomo_star, read_tomogram_star

    table = read_tomogram_star(masked_tomo_star)
    table["rlnDeconvTomoName"] = [str(phantom_small.tomo)]  # stands in for a deconvolved one
    write_star(table, tmp_path / "t.star")
    for flag, expected in (("--use-deconv-tomo", 1), ("--no-use-deconv-tomo", 0)):
        check_ok(invoke(["extract", tmp_path / "t.star", "--subtomo-folder", tmp_path / flag, "--subtomo-star",
                         tmp_path / f"{flag}.star", "--cube-size", "16", "--crop-size", "24", flag]))
        assert set(read_subtomo_star(tmp_path / f"{flag}.star")["rlnDeconvolved"]) == {expected}


# --- the report ---------------------------------------------------------------------------------


def test_the_report_shows_each_models_record(trained):
    from isonet_steps.report.build import build_report

    text = build_report(trained / "refine")
    start = text.index("<h3>Model record</h3>")
    block = text[start:text.index("</table>", start)]
    for cell in ("half 1", "half 2", "model_final.keras", "10 Å", "16 / 24 voxels", "U-Net depth 2, 4 base filters",
                 "float32", "-50..60°", "deconvolved tomograms", "3 (digest ", "2 of 2"):
        assert cell in block, cell


# --- isonet model-info --------------------------------------------------------------------------


def test_model_info_prints_the_record_without_loading_keras(trained, identity_model):
    model = trained / "refine" / "half1" / "model_final.keras"
    code = ("import sys; from isonet_steps.cli.main import cli\n"
            f"try:\n    cli.main(['model-info', {str(model)!r}], standalone_mode=False)\n"
            "finally:\n    print(sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow', 'torch'}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"{model}:" and lines[-1] == "[]"
    assert any(line.split() == ["voxel", "size", "10", "Å"] for line in lines)
    assert any("input" in line and "deconvolved tomograms" in line for line in lines)
    as_json = json.loads(check_ok(invoke(["model-info", model, "--json"])).stdout)
    assert ModelRecord.from_json(as_json) == read_model_record(model)
    none = check_ok(invoke(["model-info", identity_model]))
    assert "no record of its training" in none.stdout
    assert json.loads(check_ok(invoke(["model-info", identity_model, "--json"])).stdout) is None
    check_bad_input(invoke(["model-info", trained / "nope.keras"]), "nope.keras", "not found")


def test_the_subtomograms_voxel_size_is_their_headers_else_the_star_and_a_mix_is_said(tmp_path):
    from isonet_steps.io.log import get_logger
    from isonet_steps.steps.refine import load_subtomos

    cube = np.random.default_rng(2).normal(size=(16, 16, 16)).astype(np.float32)
    rows = []
    for i, (header, star) in enumerate([(10.0, 10.0), (0.0, 9.6), (5.0, 10.0)]):
        with mrcfile.new(tmp_path / f"s{i}.mrc") as mrc:  # header 0: not set (write_volume would write 1 Å)
            mrc.set_data(cube)
            mrc.voxel_size = header
        rows.append({"rlnImageName": f"s{i}.mrc", "rlnPixelSize": star, "rlnTiltMin": -60.0, "rlnTiltMax": 60.0})
    write_star(pd.DataFrame(rows), tmp_path / "subtomo.star")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = seen.append  # type: ignore[method-assign]
    get_logger().addHandler(handler)
    try:
        data = load_subtomos(tmp_path / "subtomo.star")
        assert data.voxel_size == pytest.approx(9.6) and data.deconvolved is None  # median: 10, 9.6 (STAR's), 5
        assert any("range from 5 to 10 Å" in r.getMessage() for r in seen)
        seen.clear()
        write_star(pd.DataFrame(rows[:2]), tmp_path / "two.star")
        assert load_subtomos(tmp_path / "two.star").voxel_size == pytest.approx(9.8) and not seen  # within 5 %
    finally:
        get_logger().removeHandler(handler)
