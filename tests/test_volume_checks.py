"""Bad values inside tomograms (issue #25): found where a tomogram enters, one line, nothing written.

The array checks of core/volume_checks.py against numpy, then each case as a user meets it:
prepare-star on a tomogram with a NaN, an Inf, values around 1e30, a constant or mostly-padding
volume, a thin slab; --fix-nonfinite carried through the STAR to extract; header statistics that
lie; integer and float16 modes; halves that differ; extract on a STAR made elsewhere; predict's
refusal of a NaN or constant result.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from _data_steps import write_star
from conftest import check_bad_input, check_ok, invoke
from isonet_steps.core.volume_checks import (
    FLOAT32_SAFE_MAX,
    check_halves,
    check_prediction,
    check_tomogram,
    fill_nonfinite,
    volume_stats,
)
from isonet_steps.io.errors import InputError

SHAPE = (24, 40, 40)


def _noise(seed: int = 0, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _mrc(path: Path, data: np.ndarray, voxel_size: float = 10.0, header_stats: tuple | None = None) -> Path:
    """Write ``data`` as it is (any dtype mrcfile takes), optionally with chosen header min/max/mean."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.new(str(path), overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = voxel_size
            if header_stats is not None:
                mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = header_stats
    return path


@pytest.fixture
def log_text():
    """The isonet logger's messages (INFO and up) while the test runs, whatever its propagation."""
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("isonet")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield lambda: "\n".join(records)
    logger.removeHandler(handler)
    logger.setLevel(level)


def _prepare(folder: Path, out: Path, *extra):
    return invoke(["prepare-star", folder, "-o", out, "--wedge-check", "off", *extra])


# ---- the array checks --------------------------------------------------------------------------


def test_volume_stats_match_numpy_slab_by_slab_on_a_memory_map(tmp_path):
    data = _noise(3) * 5 + 2
    data[7, 3, 9] = np.nan
    data[20, 1, 1] = np.inf
    path = _mrc(tmp_path / "t.mrc", data)
    finite = data[np.isfinite(data)].astype(np.float64)
    with mrcfile.mmap(str(path), permissive=True) as mrc:
        stats = volume_stats(mrc.data, slab_voxels=3 * 40 * 40)  # 3 planes a slab: 8 slabs
    assert stats.nonfinite == 2 and stats.first_nonfinite == (7, 3, 9)
    assert stats.minimum == finite.min() and stats.maximum == finite.max()
    assert stats.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert stats.std == pytest.approx(finite.std(), rel=1e-10)
    assert (stats.low, stats.high) == pytest.approx(tuple(np.percentile(finite, [4, 96])), rel=1e-3)


def test_fill_nonfinite_repairs_every_read_and_leaves_the_file_alone(tmp_path):
    data = _noise(4)
    data[::5, ::7, ::3] = np.nan
    path = _mrc(tmp_path / "t.mrc", data)
    with mrcfile.mmap(str(path), permissive=True) as mrc:
        view = fill_nonfinite(mrc.data, 0.25)
        box = view[2:12, 5:20, 0:9]
        assert np.isfinite(box).all() and box.dtype == np.float32
        assert np.array_equal(box[np.isnan(data[2:12, 5:20, 0:9])], np.full(int(np.isnan(data[2:12, 5:20, 0:9]).sum()),
                                                                              0.25, np.float32))
        assert np.isfinite(np.asarray(view)).all()
        assert np.isnan(mrc.data).sum() == np.isnan(data).sum()
    assert fill_nonfinite(data, None) is data


@pytest.mark.parametrize("case, words", [
    ("nan", ["1 NaN/Inf voxels", "(3, 4, 5)", "--fix-nonfinite"]),
    ("inf", ["1 NaN/Inf voxels", "--fix-nonfinite"]),
    ("huge", ["e+30", "beyond 1e+12", "float32", "rescale"]),
    ("constant", ["constant", "= 7"]),
    ("offset", ["near-constant", "float32 precision"]),
    ("padding", ["near-constant", "92 %", "padding"]),
    ("thin", ["4x40x40", "too thin"]),
    ("all_nan", ["every voxel", "NaN"]),
])
def test_check_tomogram_refuses_each_case_with_its_fix(tmp_path, case, words):
    data = _noise(5)
    if case == "nan":
        data[3, 4, 5] = np.nan
    elif case == "inf":
        data[3, 4, 5] = -np.inf
    elif case == "huge":
        data = data * np.float32(1e30)
    elif case == "constant":
        data[:] = 7.0
    elif case == "offset":
        data = (np.float64(1e6) + 0.1 * data).astype(np.float32)  # a few float32 steps (0.0625) of spread
    elif case == "padding":
        data[:, :, 3:] = 0.0  # 93 % of the voxels are zero padding
    elif case == "thin":
        data = data[:4]
    elif case == "all_nan":
        data[:] = np.nan
    path = _mrc(tmp_path / f"{case}.mrc", data)
    with pytest.raises(InputError) as err:
        check_tomogram(path)
    line = str(err.value)
    assert line.startswith(str(path)) and "\n" not in line
    for word in words:
        assert word in line, line


def test_a_large_but_safe_range_and_a_small_spread_pass(tmp_path):
    data = _noise(6) * np.float32(FLOAT32_SAFE_MAX / 10)
    assert check_tomogram(_mrc(tmp_path / "big.mrc", data)).fill is None
    ok = (1000.0 + 0.5 * _noise(7)).astype(np.float32)  # counts on an offset: std/mean 5e-4
    assert check_tomogram(_mrc(tmp_path / "counts.mrc", ok)).stats.std == pytest.approx(0.5, rel=0.05)


def test_fix_nonfinite_gives_the_mean_of_the_finite_voxels(tmp_path, log_text):
    data = _noise(8)
    data[1, 2, 3], data[4, 5, 6] = np.nan, np.inf
    check = check_tomogram(_mrc(tmp_path / "t.mrc", data), fix_nonfinite=True)
    assert check.fill == pytest.approx(float(data[np.isfinite(data)].astype(np.float64).mean()), rel=1e-9)
    assert "2 NaN/Inf voxels replaced" in log_text() and "--fix-nonfinite" in log_text()


def test_header_statistics_that_disagree_are_logged_not_trusted(tmp_path, log_text):
    path = _mrc(tmp_path / "zeros_header.mrc", _noise(9), header_stats=(0.0, 0.0, 0.0))  # DeepDeWedge #28
    check = check_tomogram(path)
    assert "header statistics (min 0, max 0, mean 0) disagree with the data" in log_text()
    assert check.stats.maximum > 3  # the data's own
    cleared = len(log_text())
    good = _noise(9)
    check_tomogram(_mrc(tmp_path / "true_header.mrc", good,
                        header_stats=(good.min(), good.max(), good.astype(np.float64).mean())))
    assert "header statistics" not in log_text()[cleared:]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.float16])
def test_integer_and_float16_modes_are_read_as_float32(tmp_path, dtype, log_text):
    scale = 20 if dtype == np.int8 else 1000
    data = np.clip(_noise(10) * scale, -120 if dtype == np.int8 else -25000, 25000)
    stored = (data + (40000 if dtype == np.uint16 else 0)).astype(dtype)
    check = check_tomogram(_mrc(tmp_path / "t.mrc", stored))
    assert f"stored as {np.dtype(dtype)}" in log_text()
    exact = stored.astype(np.float64)
    assert (check.stats.minimum, check.stats.maximum) == (exact.min(), exact.max())
    assert check.stats.mean == pytest.approx(exact.mean(), rel=1e-9)
    assert check.stats.std == pytest.approx(exact.std(), rel=1e-9)


def test_clipped_integer_export_is_reported(tmp_path, log_text):
    data = np.clip(_noise(11) * 200, -128, 127).astype(np.int8)  # ~50 % of the voxels at -128 or 127
    check_tomogram(_mrc(tmp_path / "clipped.mrc", data))
    assert "sit at the int8 limits" in log_text()


def test_halves_must_share_shape_and_voxel_size(tmp_path):
    a = _mrc(tmp_path / "a.mrc", _noise(1), voxel_size=10.0)
    check_halves(a, _mrc(tmp_path / "same.mrc", _noise(2), voxel_size=10.0))
    with pytest.raises(InputError, match="voxel size 12.*differs"):
        check_halves(a, _mrc(tmp_path / "b.mrc", _noise(2), voxel_size=12.0))
    with pytest.raises(InputError, match="shape .* differs"):
        check_halves(a, _mrc(tmp_path / "c.mrc", _noise(2, (24, 40, 32)), voxel_size=10.0))


@pytest.mark.parametrize("bad, words", [("nan", ["NaN/Inf", "not written"]), ("constant", ["constant"])])
def test_check_prediction_refuses_a_broken_result(bad, words):
    corrected = _noise(12)
    check_prediction(corrected, "out.mrc", "in.mrc")
    corrected[0, 0, 0] = np.nan if bad == "nan" else 0.0
    if bad == "constant":
        corrected[:] = 0.0
    with pytest.raises(InputError) as err:
        check_prediction(corrected, "out.mrc", "in.mrc")
    for word in words + ["out.mrc", "in.mrc", "--learning-rate"]:
        assert word in str(err.value)


# ---- as a user meets them ----------------------------------------------------------------------


@pytest.mark.parametrize("case, words", [
    ("nan", ["t.mrc", "NaN/Inf", "--fix-nonfinite"]),
    ("inf", ["t.mrc", "NaN/Inf", "--fix-nonfinite"]),
    ("huge", ["t.mrc", "float32", "rescale"]),
])
@pytest.mark.parametrize("wedge_check", ["refuse", "off"])
def test_prepare_star_refuses_bad_voxels_in_one_line(tmp_path, case, words, wedge_check):
    """The issue's three tomograms: a traceback from the wedge check before this change."""
    data = _noise(13, (32, 48, 48))
    if case == "huge":
        data *= np.float32(1e30)
    else:
        data[5, 5, 5] = np.nan if case == "nan" else np.inf
    _mrc(tmp_path / "tomos" / "t.mrc", data)
    out = tmp_path / "tomograms.star"
    result = invoke(["prepare-star", tmp_path / "tomos", "-o", out, "--wedge-check", wedge_check])
    check_bad_input(result, *words, not_written=[out])


def test_prepare_star_refuses_a_thin_slab(tmp_path):
    _mrc(tmp_path / "tomos" / "slab.mrc", _noise(14, (4, 48, 48)))
    out = tmp_path / "tomograms.star"
    check_bad_input(_prepare(tmp_path / "tomos", out), "slab.mrc", "too thin", not_written=[out])


def test_fix_nonfinite_reaches_extract_through_the_star(tmp_path):
    data = _noise(15, (32, 48, 48))
    data[::3, ::4, ::5] = np.nan  # every box holds some
    _mrc(tmp_path / "tomos" / "holes.mrc", data)
    star = tmp_path / "tomograms.star"
    check_ok(_prepare(tmp_path / "tomos", star, "--fix-nonfinite", "--number-subtomos", "3"))
    assert list(starfile.read(star)["rlnFixNonfinite"]) == [1]
    fill = float(data[np.isfinite(data)].astype(np.float64).mean())
    result = invoke(["extract", star, "--subtomo-folder", tmp_path / "sub", "--subtomo-star", tmp_path / "sub.star",
                     "--cube-size", "16", "--crop-size", "24", "--no-use-deconv-tomo"])
    check_ok(result)
    boxes = sorted((tmp_path / "sub").glob("*.mrc"))
    assert len(boxes) == 3
    for box in boxes:
        values = mrcfile.read(box)
        assert np.isfinite(values).all()
        assert np.isclose(values, fill, atol=1e-6).sum() >= 8 * 6 * 4  # the repaired voxels: every 3rd, 4th, 5th
    assert "replaced by the mean of the others" in result.stderr


def test_extract_checks_tomograms_of_a_star_made_elsewhere(tmp_path):
    """Before: extract memory-mapped the tomogram unchecked and wrote NaN subtomograms."""
    data = _noise(16, (32, 48, 48))
    data[10:20, 10:40, 10:40] = np.nan
    path = _mrc(tmp_path / "holes.mrc", data)
    star = write_star(tmp_path / "elsewhere.star", [{"rlnMicrographName": path, "rlnNumberSubtomo": 2,
                                                     "rlnDefocus": 0.0}])
    out = [tmp_path / "sub", tmp_path / "sub.star"]
    args = ["extract", star, "--subtomo-folder", out[0], "--subtomo-star", out[1], "--cube-size", "16",
            "--crop-size", "24"]
    check_bad_input(invoke(args), "holes.mrc", "NaN/Inf", not_written=out)
    table = starfile.read(star)
    table["rlnFixNonfinite"] = 1  # the choice, recorded as prepare-star records it
    starfile.write(table, star, overwrite=True)
    check_ok(invoke(args))
    assert all(np.isfinite(mrcfile.read(p)).all() for p in out[0].glob("*.mrc"))


def test_header_zero_statistics_pass_prepare_star_with_a_warning(tmp_path):
    _mrc(tmp_path / "tomos" / "t.mrc", _noise(17, (32, 48, 48)), header_stats=(0.0, 0.0, 0.0))
    result = check_ok(_prepare(tmp_path / "tomos", tmp_path / "tomograms.star"))
    assert "disagree with the data" in result.stderr


@pytest.mark.parametrize("dtype", [np.int16, np.float16])
def test_integer_and_float16_tomograms_give_float32_subtomograms(tmp_path, dtype):
    data = (_noise(18, (32, 48, 48)) * (100 if dtype == np.int16 else 1)).astype(dtype)
    _mrc(tmp_path / "tomos" / "t.mrc", data)
    star = tmp_path / "tomograms.star"
    check_ok(_prepare(tmp_path / "tomos", star, "--number-subtomos", "2"))
    check_ok(invoke(["extract", star, "--subtomo-folder", tmp_path / "sub", "--subtomo-star", tmp_path / "sub.star",
                     "--cube-size", "16", "--crop-size", "24"]))
    for box in (tmp_path / "sub").glob("*.mrc"):
        with mrcfile.open(box) as mrc:
            assert mrc.data.dtype == np.float32 and mrc.voxel_size.x == pytest.approx(10.0)


def test_noise2noise_halves_with_different_voxel_sizes_are_refused(tmp_path):
    tomo = _mrc(tmp_path / "t.mrc", _noise(19, (32, 48, 48)))
    h1 = _mrc(tmp_path / "h1.mrc", _noise(20, (32, 48, 48)), voxel_size=10.0)
    h2 = _mrc(tmp_path / "h2.mrc", _noise(21, (32, 48, 48)), voxel_size=20.0)
    star = write_star(tmp_path / "t.star", [{"rlnMicrographName": tomo, "rlnNumberSubtomo": 2, "rlnDefocus": 0.0,
                                             "rlnTomoReconstructedTomogramHalf1": h1,
                                             "rlnTomoReconstructedTomogramHalf2": h2}])
    out = [tmp_path / "sub", tmp_path / "sub.star"]
    check_bad_input(invoke(["extract", star, "--subtomo-folder", out[0], "--subtomo-star", out[1], "--cube-size",
                            "16", "--crop-size", "24", "--noise2noise"]), "h2.mrc", "voxel size", not_written=out)


@pytest.mark.parametrize("output", ["nan", "constant"])
def test_predict_writes_no_nan_or_constant_tomogram(tmp_path, output):
    from isonet_steps.steps.predict import Network, correct_tomogram

    path = _mrc(tmp_path / "t.mrc", _noise(22, (32, 48, 48)))
    out = tmp_path / "out" / "t_corrected.mrc"
    (tmp_path / "m.keras").write_bytes(b"")
    network = Network(tmp_path / "m.keras", cube_size=16, crop_size=24, batch_size=2)

    def broken(batch):
        return np.full_like(batch, np.nan if output == "nan" else 0.5)

    network._predict_fn = broken  # a network that came out broken, loaded already
    with pytest.raises(InputError, match="not written"):
        correct_tomogram(path, out, network, voxel_size=10.0)
    assert not out.exists()


def test_a_given_isonet_star_is_checked_and_the_choice_recorded(tmp_path):
    """A given tomograms.star (isonet run --input) is copied by prepare-star: same checks, same option."""
    from isonet_steps.steps.prepare_star import run_prepare_star

    data = _noise(23, (32, 48, 48))
    data[2, 3, 4] = np.nan
    star = write_star(tmp_path / "given.star", [{"rlnMicrographName": _mrc(tmp_path / "t.mrc", data),
                                                 "rlnTiltMin": -60.0, "rlnTiltMax": 60.0}])
    with pytest.raises(InputError, match="t.mrc: tomogram has 1 NaN/Inf voxels"):
        run_prepare_star(star, tmp_path / "run.star")
    assert not (tmp_path / "run.star").exists()
    run_prepare_star(star, tmp_path / "run.star", fix_nonfinite=True, wedge_check="refuse")
    assert list(starfile.read(tmp_path / "run.star")["rlnFixNonfinite"]) == [1]


def test_prepare_subtomo_star_skips_subtomograms_with_bad_voxels(tmp_path):
    """Subtomograms cut elsewhere: a NaN or constant one is left out with a warning saying why (before: listed)."""
    folder = tmp_path / "sub"
    good = [_mrc(folder / f"good_{i}.mrc", _noise(30 + i, (24, 24, 24))) for i in range(2)]
    holes = _noise(40, (24, 24, 24))
    holes[1, 2, 3] = np.nan
    _mrc(folder / "holes.mrc", holes)
    _mrc(folder / "flat.mrc", np.zeros((24, 24, 24), np.float32))
    result = check_ok(invoke(["prepare-subtomo-star", folder, "-o", tmp_path / "subtomo.star"]))
    names = [Path(n).name for n in starfile.read(tmp_path / "subtomo.star")["rlnImageName"]]
    assert names == [p.name for p in good]
    assert "skipping" in result.stderr and "holes.mrc: subtomogram has 1 NaN/Inf voxels" in result.stderr
    assert "flat.mrc: subtomogram is constant" in result.stderr


@pytest.mark.parametrize("args", [["deconv", "--deconv-folder", "out"], ["deconv", "--deconv-folder", "out",
                                                                           "--chunk-size", "32"],
                                  ["make-mask", "--mask-folder", "out"], ["resize", "--out-folder", "out"]])
def test_every_step_repairs_the_voxels_the_star_says_to(tmp_path, args):
    """A row with rlnFixNonfinite 1: deconv (whole and chunked), make-mask and resize write finite volumes."""
    data = _noise(50, (24, 48, 48))  # chunked: more than one 32³ chunk
    data[::4, ::5, ::3] = np.inf
    star = write_star(tmp_path / "t.star", [{"rlnMicrographName": _mrc(tmp_path / "t.mrc", data),
                                             "rlnFixNonfinite": 1}])
    result = check_ok(invoke([args[0], star, *args[1:]], cwd=tmp_path))
    outputs = list((tmp_path / "out").glob("*.mrc"))
    assert outputs and all(np.isfinite(mrcfile.read(p)).all() for p in outputs)
    assert "replaced by the mean of the others" in result.stderr
