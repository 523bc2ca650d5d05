"""The per-tomogram plan: prepare-star's plan.csv and one-row STARs, scattered extraction, merge-star.

A run scattered tomogram by tomogram (Nextflow's tasks) must train on the same subtomograms and
halves as one extract over all tomograms: checked here on real tomograms and masks, box by box.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import check_bad_input, check_ok
from isonet_steps.core.extract import odd_halves
from isonet_steps.io.errors import InputError
from isonet_steps.io.mrc import read_volume, write_volume
from isonet_steps.io.plan import PLAN_FILE, read_plan, write_plan
from isonet_steps.io.star import read_star, read_subtomo_star, read_tomogram_star, write_star

SHAPE = (40, 64, 64)
NUMBERS = (3, 5, 4)  # odd counts: who gets the odd one out matters


@pytest.fixture(scope="module")
def folder(tmp_path_factory, phantom_small):
    """Three tomograms (crops of the session phantom, shifted so that they differ) with a .tlt beside one."""
    root = tmp_path_factory.mktemp("plan")
    data = root / "tomos"
    tomogram = phantom_small.phantom.tomogram
    for i in range(3):
        write_volume(data / f"TS_0{i + 1}.mrc", np.roll(tomogram, 9 * i, axis=2)[4:44, 16:80, 16:80], 10.0)
    (data / "TS_02.tlt").write_text("\n".join(str(a) for a in range(-54, 55, 6)) + "\n")
    return data


def _prepare(run_isonet, folder, out, *extra):
    check_ok(run_isonet("prepare-star", folder, "-o", out / "tomograms.star", "--plan-folder", out / "plan",
                        "--wedge-check", "off", *extra))
    table = read_tomogram_star(out / "tomograms.star")
    table["rlnNumberSubtomo"] = list(NUMBERS)
    return table


def test_plan_rows_name_each_tomogram_and_its_selection(run_isonet, folder, tmp_path):
    _prepare(run_isonet, folder, tmp_path, "--train-idx", "1,3", "--tomo-idx", "2-3")
    plan = read_plan(tmp_path / "plan" / PLAN_FILE)
    assert [r.id for r in plan] == ["TS_01", "TS_02", "TS_03"] and [r.index for r in plan] == [1, 2, 3]
    assert [r.trains for r in plan] == [True, False, True]
    assert [r.corrects for r in plan] == [False, True, True]
    assert [r.tomogram for r in plan] == [str((folder / f"TS_0{i}.mrc").absolute()) for i in (1, 2, 3)]
    assert [r.tilt_angles for r in plan] == ["", "TS_02.tlt", ""]
    assert (plan[1].tilt_min, plan[1].tilt_max) == (-54.0, 54.0) and plan[0].tilt_min == -60.0
    for row in plan:  # each one-row STAR is the full STAR's row, rlnIndex kept, paths valid from anywhere
        one = read_tomogram_star(tmp_path / "plan" / row.star)
        assert len(one) == 1 and int(one["rlnIndex"].iloc[0]) == row.index
        assert one["rlnMicrographName"].iloc[0] == row.tomogram


def test_train_idx_defaults_to_tomo_idx(run_isonet, folder, tmp_path):
    _prepare(run_isonet, folder, tmp_path, "--tomo-idx", "2")
    assert [(r.trains, r.corrects) for r in read_plan(tmp_path / "plan" / PLAN_FILE)] == [
        (False, False), (True, True), (False, False)]


def test_named_in_gives_bare_names_in_the_one_row_stars(run_isonet, folder, tmp_path):
    """Nextflow: the STARs name the input where it lives; each task stages its files beside its STAR."""
    check_ok(run_isonet("prepare-star", folder, "-o", tmp_path / "tomograms.star", "--plan-folder", tmp_path / "plan",
                        "--named-in", "file:///data/tomos", "--tilt-folder", "tilt_angles", "--wedge-check", "off"))
    plan = read_plan(tmp_path / "plan" / PLAN_FILE)
    assert plan[1].tomogram == "file:///data/tomos/TS_02.mrc" and plan[1].tilt_angles == "TS_02.tlt"
    one = read_star(tmp_path / "plan" / "TS_02.star")
    assert (one["rlnMicrographName"].iloc[0], one["rlnTiltAngleFile"].iloc[0]) == ("TS_02.mrc", "TS_02.tlt")
    assert (tmp_path / "tilt_angles" / "TS_02.tlt").is_file()


def test_unknown_train_idx_is_refused_before_anything_is_written(run_isonet, folder, tmp_path, bad_input):
    result = run_isonet("prepare-star", folder, "-o", tmp_path / "tomograms.star", "--plan-folder", tmp_path / "plan",
                        "--train-idx", "7", "--wedge-check", "off")
    bad_input(result, "--train-idx", "7", not_written=[tmp_path / "tomograms.star", tmp_path / "plan"])


@pytest.mark.parametrize("tiles, words", [
    (("96", "64", "3"), ("--predict-crop-size 64 with --predict-cube-size 96", "use --predict-crop-size 112")),
    (("100", "128", "3"), ("--predict-cube-size 100: must be divisible by 8", "use 96 or 104")),
    (("96", "128", None), ("give all three",)),
])
def test_predict_tiles_are_refused_before_anything_is_written(run_isonet, folder, tmp_path, bad_input, tiles, words):
    """The Nextflow pipeline's first task checks predict's tiles with the package's rule, not after refine."""
    cube, crop, depth = tiles
    options = ["--predict-cube-size", cube, "--predict-crop-size", crop, *(["--unet-depth", depth] if depth else [])]
    result = run_isonet("prepare-star", folder, "-o", tmp_path / "tomograms.star", "--plan-folder", tmp_path / "plan",
                        "--wedge-check", "off", *options)
    bad_input(result, *words, not_written=[tmp_path / "tomograms.star", tmp_path / "plan"])
    check_ok(run_isonet("prepare-star", folder, "-o", tmp_path / "tomograms.star", "--wedge-check", "off",
                        "--predict-cube-size", "96", "--predict-crop-size", "128", "--unet-depth", "3"))


def test_an_isonet_star_is_copied_with_absolute_paths(run_isonet, folder, tmp_path):
    star = write_star(pd.DataFrame({"rlnIndex": [1, 2], "rlnMicrographName": ["tomos/TS_01.mrc", "tomos/TS_03.mrc"],
                                    "rlnPixelSize": [10.0, 10.0], "rlnDefocus": [0.0, 20000.0]}),
                      folder.parent / "isonet.star")
    check_ok(run_isonet("prepare-star", star, "-o", tmp_path / "tomograms.star", "--plan-folder", tmp_path / "plan",
                        "--wedge-check", "off"))
    plan = read_plan(tmp_path / "plan" / PLAN_FILE)
    assert [r.tomogram for r in plan] == [str((folder / n).resolve()) for n in ("TS_01.mrc", "TS_03.mrc")]
    assert [r.defocus for r in plan] == [0.0, 20000.0]


def test_odd_halves_balances_the_run():
    firsts = odd_halves([3, 5, 4, 1, 1])
    assert firsts == [1, 2, 1, 1, 2]
    counts = {1: 0, 2: 0}
    for number, first in zip([3, 5, 4, 1, 1], firsts):
        counts[first] += (number + 1) // 2
        counts[3 - first] += number // 2
    assert abs(counts[1] - counts[2]) <= 1


@pytest.mark.parametrize("split", ["random", "slabs"])
def test_scattered_extraction_gives_the_run_s_subtomograms_and_halves(run_isonet, folder, tmp_path, split):
    """Each tomogram extracted alone (its one-row STAR, the plan's first_half), then merged: same boxes, same halves."""
    table = _prepare(run_isonet, folder, tmp_path)
    full = write_star(table, tmp_path / "counts.star")
    common = ["--cube-size", 16, "--crop-size", 24, "--seed", 5, "--split-halves", split]
    check_ok(run_isonet("extract", full, "--subtomo-folder", tmp_path / "all", "--subtomo-star",
                        tmp_path / "all.star", *common))
    plan = read_plan(tmp_path / "plan" / PLAN_FILE)
    firsts = odd_halves(list(NUMBERS))
    assert [r.first_half for r in plan] == [1, 1, 1]  # the plan's were written for 100 subtomograms each
    stars = []
    for row, number, first in zip(plan, NUMBERS, firsts):
        one = read_tomogram_star(tmp_path / "plan" / row.star).assign(rlnNumberSubtomo=number)
        star = write_star(one, tmp_path / "one" / row.star)
        stars.append(tmp_path / "one" / f"{row.id}_subtomo.star")
        check_ok(run_isonet("extract", star, "--subtomo-folder", tmp_path / "scattered", "--subtomo-star", stars[-1],
                            "--first-half", first, *common))
    check_ok(run_isonet("merge-star", *stars, "-o", tmp_path / "merged.star"))
    whole, merged = read_subtomo_star(tmp_path / "all.star"), read_subtomo_star(tmp_path / "merged.star")
    same = ["rlnSubtomoIndex", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnRandomSubset"]
    pd.testing.assert_frame_equal(whole[same], merged[same])
    assert sorted(merged["rlnRandomSubset"].value_counts().tolist()) == [6, 6]
    for a, b in zip(whole["rlnImageName"], merged["rlnImageName"]):
        np.testing.assert_array_equal(read_volume(tmp_path / a).data, read_volume(tmp_path / "one" / b).data)


def test_merge_star_combines_the_halves_predicts_by_index(run_isonet, tmp_path):
    base = {"rlnIndex": [2], "rlnMicrographName": ["b.mrc"], "rlnPixelSize": [10.0]}
    half1 = write_star(pd.DataFrame({**base, "rlnCorrectedTomoHalf1": ["c/b_half1.mrc"]}), tmp_path / "1" / "t.star")
    half2 = write_star(pd.DataFrame({**base, "rlnCorrectedTomoHalf2": ["c/b_half2.mrc"]}), tmp_path / "2" / "t.star")
    other = write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["a.mrc"], "rlnPixelSize": [10.0],
                                     "rlnCorrectedTomoHalf1": ["c/a_half1.mrc"]}), tmp_path / "3" / "t.star")
    check_ok(run_isonet("merge-star", half2, other, half1, "-o", tmp_path / "tomograms.star"))
    merged = read_tomogram_star(tmp_path / "tomograms.star")
    assert list(merged["rlnIndex"]) == [1, 2]
    assert list(merged["rlnCorrectedTomoHalf1"]) == ["c/a_half1.mrc", "c/b_half1.mrc"]
    assert list(merged["rlnCorrectedTomoHalf2"]) == ["None", "c/b_half2.mrc"]


def test_merge_star_refuses_mixed_kinds(run_isonet, tmp_path):
    tomos = write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": ["a.mrc"]}), tmp_path / "t.star")
    subtomos = write_star(pd.DataFrame({"rlnSubtomoIndex": [1], "rlnImageName": ["s.mrc"]}), tmp_path / "s.star")
    check_bad_input(run_isonet("merge-star", tomos, subtomos, "-o", tmp_path / "m.star"), "subtomogram STAR",
                    not_written=[tmp_path / "m.star"])


def test_read_plan_names_a_broken_line(tmp_path):
    path = tmp_path / PLAN_FILE
    path.write_text("id,index\nTS_01,1\n")
    with pytest.raises(InputError, match="line 2 lacks"):
        read_plan(path)
    write_plan([], path)
    assert read_plan(path) == []
    path.write_text(path.read_text() + "TS_01,x," + "," * 13 + "\n")
    with pytest.raises(InputError, match="line 2"):
        read_plan(path)


def test_no_check_data_plans_without_reading_a_tomogram(run_isonet, tmp_path, bad_input):
    """The pipeline's -stub: empty files have a plan, and nothing reads them; a real run refuses them."""
    data = tmp_path / "tomos"
    data.mkdir()
    for name in ("a.mrc", "b.rec"):
        (data / name).touch()
    out = tmp_path / "out"
    bad_input(run_isonet("prepare-star", data, "-o", out / "tomograms.star", "--plan-folder", out / "plan"),
              "a.mrc", not_written=[out / "tomograms.star"])
    check_ok(run_isonet("prepare-star", data, "-o", out / "tomograms.star", "--plan-folder", out / "plan",
                        "--no-check-data"))
    assert [r.id for r in read_plan(out / "plan" / PLAN_FILE)] == ["a", "b"]
