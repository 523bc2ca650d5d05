"""The steps as library calls (no Click): plain values in, files out, one rule for which tomogram a row uses."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isonet_steps.io.mrc import read_volume, write_volume
from isonet_steps.io.star import read_star, write_star
from isonet_steps.steps.extract import run_extract
from isonet_steps.steps.fsc import run_fsc
from isonet_steps.steps.make_mask import run_make_mask
from isonet_steps.steps.prepare_star import run_prepare_star


@pytest.fixture
def star_with_deconv(tmp_path):
    """A tomograms.star whose row names a raw tomogram and a different 'deconvolved' one."""
    rng = np.random.default_rng(0)
    (tmp_path / "tomos").mkdir()
    raw = rng.standard_normal((32, 48, 48)).astype(np.float32)
    write_volume(tmp_path / "tomos" / "raw.mrc", raw, 10.0)
    write_volume(tmp_path / "deconv.mrc", -2.0 * raw, 10.0)
    star = run_prepare_star(tmp_path / "tomos", tmp_path / "tomograms.star", number_subtomos=4)
    table = read_star(star)
    table["rlnDeconvTomoName"] = str(tmp_path / "deconv.mrc")
    write_star(table, star)
    return star, raw


@pytest.mark.parametrize("use_deconv", [True, False])
def test_extract_and_make_mask_read_the_tomogram_the_flag_chooses(star_with_deconv, tmp_path, use_deconv):
    star, raw = star_with_deconv
    source = -2.0 * raw if use_deconv else raw
    mask_star = run_make_mask(star, mask_folder=tmp_path / "mask", use_deconv_tomo=use_deconv, patch_size=2,
                              output_star=tmp_path / "mask.star")
    assert Path(read_star(mask_star)["rlnMaskName"].iloc[0]).name == ("deconv" if use_deconv else "raw") + "_mask.mrc"
    subtomo_star = run_extract(star, subtomo_folder=tmp_path / "sub", subtomo_star=tmp_path / "sub.star",
                               cube_size=16, crop_size=24, use_deconv_tomo=use_deconv)
    rows = read_star(subtomo_star)
    assert len(rows) == 4
    for _, row in rows.iterrows():
        z, y, x = (int(row[f"rlnCoordinate{a}"]) - 12 for a in "ZYX")
        box = read_volume(row["rlnImageName"], "subtomogram").data
        np.testing.assert_allclose(box, source[z:z + 24, y:y + 24, x:x + 24], rtol=1e-6)


def test_fsc_draws_its_plot_itself(tmp_path):
    """The step writes the FSC figure (figures/, below the steps) that the report shows for the same JSON."""
    from PIL import Image

    from isonet_steps.figures.fsc import fsc_png
    from isonet_steps.report.sections import fsc_result_from_dict

    rng = np.random.default_rng(1)
    signal = rng.standard_normal((16, 16, 16)).astype(np.float32)
    for name in ("a", "b"):
        write_volume(tmp_path / f"{name}.mrc", signal + 0.3 * rng.standard_normal(signal.shape), 10.0)
    run_fsc(tmp_path / "a.mrc", tmp_path / "b.mrc", tmp_path / "x.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mrc", "b.mrc", "x.json"]  # no plot unless asked
    payload = run_fsc(tmp_path / "a.mrc", tmp_path / "b.mrc", tmp_path / "f.json", plot=tmp_path / "f.png")
    assert json.loads((tmp_path / "f.json").read_text()) == payload
    assert payload["pixel_size_A"] == 10.0
    png = (tmp_path / "f.png").read_bytes()
    assert png == fsc_png(fsc_result_from_dict(payload))
    pixels = np.asarray(Image.open(tmp_path / "f.png").convert("RGB"))
    assert pixels.shape == (400, 640, 3) and (pixels == 0).all(axis=2).sum() > 100  # the black global curve


def test_gold_standard_corrects_without_temporary_stars(tmp_path, identity_model, monkeypatch):
    """Each half network loads once and corrects the tomogram and its even/odd half; the only STAR written is
    the output, and every FSC gets its PNG.
    """
    import os
    import shutil

    from isonet_steps.steps import gold_standard, predict

    saved = dict(os.environ)  # the device set-up writes environment variables: restore them afterwards
    monkeypatch.setenv("ISONET_NO_PROGRESS", "1")
    rng = np.random.default_rng(4)
    signal = rng.standard_normal((20, 24, 24)).astype(np.float32)
    for name, noise in (("t.mrc", 0.1), ("even.mrc", 0.5), ("odd.mrc", 0.5)):
        write_volume(tmp_path / name, signal + noise * rng.standard_normal(signal.shape), 10.0)
    for half in (1, 2):
        (tmp_path / "res" / f"half{half}").mkdir(parents=True)
        shutil.copyfile(identity_model, tmp_path / "res" / f"half{half}" / "model_final.keras")
    write_star(pd.DataFrame({"rlnIndex": [3], "rlnMicrographName": ["t.mrc"], "rlnPixelSize": [10.0],
                             "rlnTomoReconstructedTomogramHalf1": ["even.mrc"],
                             "rlnTomoReconstructedTomogramHalf2": ["odd.mrc"]}), tmp_path / "tomograms.star")
    stars, loads = [], []
    for module in (gold_standard, predict):
        monkeypatch.setattr(module, "write_star", lambda table, path, real=write_star: stars.append(Path(path))
                            or real(table, path))
    real_load = predict.Network._load
    monkeypatch.setattr(predict.Network, "_load", lambda self, n: loads.append((self.model, n)) or real_load(self, n))
    try:
        gold_standard.run_gold_standard(tmp_path / "tomograms.star", tmp_path / "res", tmp_path / "gs", cube_size=16,
                                        crop_size=24, gpus="cpu", output_star=tmp_path / "out.star")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert stars == [tmp_path / "out.star"]
    assert loads == [(tmp_path / "res" / f"half{h}" / "model_final.keras", 2) for h in (1, 2)]
    table = read_star(tmp_path / "out.star")
    assert table["rlnMicrographName"].iloc[0] == "t.mrc"  # the user's own paths as written
    for column in ("rlnCorrectedTomoHalf1", "rlnCorrectedTomoHalf2", "rlnCorrectedTomoName", "rlnGoldStandardFsc",
                   "rlnRawHalvesFsc", "rlnCorrectedHalvesFsc"):
        assert Path(table[column].iloc[0]).is_file(), column
    for fsc in ("t_fsc", "t_raw_halves_fsc", "t_corrected_halves_fsc"):
        assert (tmp_path / "gs" / f"{fsc}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    corrected = json.loads((tmp_path / "gs" / "t_corrected_halves_fsc.json").read_text())
    assert (corrected["half1"], corrected["half2"]) == (str(tmp_path / "gs" / "evenodd1" / "even_corrected.mrc"),
                                                        str(tmp_path / "gs" / "evenodd2" / "odd_corrected.mrc"))
    identity = read_volume(tmp_path / "gs" / "evenodd1" / "even_corrected.mrc", "corrected").data
    assert np.corrcoef(identity.ravel(), read_volume(tmp_path / "even.mrc", "raw").data.ravel())[0, 1] > 0.99
