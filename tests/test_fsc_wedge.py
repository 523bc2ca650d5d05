"""The FSC split by the missing wedge: "measured" (directions the tilt series recorded) and "wedge" (the rest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from isonet_steps.cli.fsc import command as fsc_command
from isonet_steps.core.fsc import DIRECTIONS, WEDGE_DIRECTIONS, fourier_shell_correlation
from isonet_steps.core.wedge import Wedge, measured_part, missing_part
from isonet_steps.figures.fsc import PLOT_STYLES, fsc_figure
from isonet_steps.io.columns import TILT_ANGLE_FILE
from isonet_steps.io.errors import InputError
from isonet_steps.io.mrc import write_volume
from isonet_steps.io.star import write_star
from isonet_steps.io.tilt_angles import write_tilt_angles
from isonet_steps.report.sections import _fsc_block, fsc_result_from_dict
from isonet_steps.steps import gold_standard, predict, row_wedge

SHAPE = (24, 28, 32)  # Z, Y, X: not a cube, so the angles must be taken in physical frequency
PIXEL = 10.0
#: -60..60° every 3° without the views from -15° to 15°: a gap around 0° (intervals -60..-16.5 and 16.5..60).
GAP_ANGLES = tuple(float(a) for a in range(-60, 61, 3) if abs(a) > 15)


def _halves(shared_in, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two halves with a common signal only where ``shared_in`` keeps it, plus independent noise everywhere."""
    rng = np.random.default_rng(seed)
    signal = shared_in(rng.standard_normal(SHAPE).astype(np.float32))
    return tuple(signal + 0.4 * rng.standard_normal(SHAPE).astype(np.float32) for _ in range(2))  # type: ignore


def _below(result, share: float = 0.85) -> np.ndarray:
    """Shells up to ``share`` of Nyquist with at least 100 voxels in both halves of the split: the corners
    past the (kz, kx) inscribed circle, which the Wedge's filters treat by radius and the FSC by angle,
    stay out, and so do the low shells whose handful of coefficients correlate by chance.
    """
    f = result.frequency / result.frequency[-1]
    return (f <= share) & (result.counts["measured"] >= 100) & (result.counts["wedge"] >= 100)


def test_shared_measured_region_correlates_only_in_measured():
    wedge = Wedge.from_range(-60, 60)
    h1, h2 = _halves(lambda v: measured_part(v, wedge))
    result = fourier_shell_correlation(h1, h2, PIXEL, wedge=wedge)
    keep = _below(result)
    assert keep.sum() >= 6
    measured, missing = result.curves["measured"][keep], result.curves["wedge"][keep]
    expected = 1.0 / (1.0 + 0.4**2)  # signal power 1 against noise 0.16
    assert np.all(measured > expected - 0.1), measured
    assert abs(np.mean(missing)) < 0.05 and np.max(np.abs(missing)) < 0.25, missing
    assert result.resolution["0.143"]["measured"] == pytest.approx(result.nyquist)
    assert result.resolution["0.143"]["wedge"] > 3 * result.nyquist
    for d in WEDGE_DIRECTIONS:  # the two partition every shell
        assert np.all(result.counts[d] > 0)
    np.testing.assert_array_equal(result.counts["measured"] + result.counts["wedge"], result.counts["global"])


def test_shared_missing_wedge_correlates_only_in_wedge():
    wedge = Wedge.from_range(-45, 55)
    h1, h2 = _halves(lambda v: missing_part(v, wedge), seed=1)
    result = fourier_shell_correlation(h1, h2, PIXEL, wedge=wedge)
    keep = _below(result)
    assert keep.sum() >= 6
    measured, missing = result.curves["measured"][keep], result.curves["wedge"][keep]
    assert np.all(missing > 1.0 / (1.0 + 0.4**2) - 0.1), missing
    assert abs(np.mean(measured)) < 0.05 and np.max(np.abs(measured)) < 0.25, measured
    assert result.resolution["0.143"]["wedge"] == pytest.approx(result.nyquist)


def _direct_wedge_counts(shape, intervals) -> np.ndarray:
    """Voxels per shell (1 .. N//2) of the full spectrum whose (kz, kx) direction is on no measured line,
    counted from the intervals directly (the ky axis, kz = kx = 0, is measured).
    """
    n = max(shape)
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(s) for s in shape), indexing="ij")
    shell = np.floor(np.sqrt((kz * n) ** 2 + (ky * n) ** 2 + (kx * n) ** 2) + 0.5).astype(int)
    flip = kx < 0  # the line through the origin: fold (kz, kx) into kx >= 0
    angle = np.degrees(np.arctan2(np.where(flip, -kz, kz), np.abs(kx)))
    measured = (kz == 0) & (kx == 0)
    for lo, hi in intervals:
        measured |= (angle >= lo) & (angle <= hi)
    counts = np.bincount(shell[~measured], minlength=n)
    return counts[1:n // 2 + 1]


def test_a_gap_in_the_series_counts_as_wedge():
    gap = Wedge.from_angles(GAP_ANGLES)
    assert gap.intervals == ((-60.0, -16.5), (16.5, 60.0))
    rng = np.random.default_rng(2)
    h1, h2 = (rng.standard_normal(SHAPE).astype(np.float32) for _ in range(2))
    with_gap = fourier_shell_correlation(h1, h2, PIXEL, wedge=gap)
    full = fourier_shell_correlation(h1, h2, PIXEL, wedge=Wedge.from_range(-60, 60))
    np.testing.assert_array_equal(with_gap.counts["wedge"], _direct_wedge_counts(SHAPE, gap.intervals))
    np.testing.assert_array_equal(full.counts["wedge"], _direct_wedge_counts(SHAPE, ((-60.0, 60.0),)))
    in_gap = with_gap.counts["wedge"] - full.counts["wedge"]
    # the gap is 33° of the 180° of directions
    assert np.all(in_gap >= 0) and 0.12 < in_gap.sum() / with_gap.counts["global"].sum() < 0.25
    np.testing.assert_array_equal(with_gap.counts["global"], full.counts["global"])


def test_without_a_wedge_the_result_is_unchanged():
    rng = np.random.default_rng(3)
    signal = rng.standard_normal(SHAPE).astype(np.float32)
    h1, h2 = (signal + 0.7 * rng.standard_normal(SHAPE).astype(np.float32) for _ in range(2))
    plain = fourier_shell_correlation(h1, h2, PIXEL).to_dict()
    split = fourier_shell_correlation(h1, h2, PIXEL, wedge=Wedge.from_range(-60, 60)).to_dict()
    assert plain["directions"] == list(DIRECTIONS) and "wedge" not in plain
    assert set(plain["fsc"]) == set(DIRECTIONS)
    assert split["directions"] == [*DIRECTIONS, *WEDGE_DIRECTIONS]
    assert split["wedge"]["tilt_min_deg"] == -60.0 and split["wedge"]["angles_deg"] is None
    # the seven curves are the same numbers with or without the split
    for key in ("fsc", "n_voxels"):
        split[key] = {d: v for d, v in split[key].items() if d in DIRECTIONS}
    split["resolution_A"] = {k: {d: v for d, v in per.items() if d in DIRECTIONS}
                             for k, per in split["resolution_A"].items()}
    del split["wedge"]
    split["directions"] = list(DIRECTIONS)
    assert split == plain


def test_json_round_trip_figure_and_report_table():
    gap = Wedge.from_angles(GAP_ANGLES)
    h1, h2 = _halves(lambda v: measured_part(v, gap), seed=4)
    result = fourier_shell_correlation(h1, h2, PIXEL, wedge=gap)
    back = fsc_result_from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.wedge == gap and back.directions == result.directions
    np.testing.assert_allclose(back.curves["wedge"], result.curves["wedge"], rtol=1e-6)
    fig = fsc_figure(back)
    lines = {line.get_label().split(" ")[0]: line for line in fig.axes[0].get_lines()}
    assert lines["measured"].get_color() == PLOT_STYLES["measured"]["color"]
    assert lines["missing"].get_color() == PLOT_STYLES["wedge"]["color"]
    assert lines["missing"].get_linewidth() > PLOT_STYLES["global"]["linewidth"]
    assert PLOT_STYLES["measured"]["color"] != PLOT_STYLES["wedge"]["color"]


def test_report_block_lists_the_two_curves(tmp_path):
    wedge = Wedge.from_range(-60, 60)
    h1, h2 = _halves(lambda v: measured_part(v, wedge), seed=5)
    path = tmp_path / "t_fsc.json"
    path.write_text(json.dumps(fourier_shell_correlation(h1, h2, PIXEL, wedge=wedge).to_dict()))
    notes: list[str] = []
    html = _fsc_block("Tomogram 1", path, notes)
    assert not notes
    assert "measured region (tilt range)" in html and "missing wedge" in html and "-60..60°" in html
    path.write_text(json.dumps(fourier_shell_correlation(h1, h2, PIXEL).to_dict()))
    html = _fsc_block("Tomogram 1", path, notes)
    assert not notes and "missing wedge" not in html and "XY plane (slab)" in html


# ------------------------------------------------------------------------------------------- isonet fsc


@pytest.fixture
def half_files(tmp_path) -> tuple[Path, Path]:
    wedge = Wedge.from_range(-50, 50)
    paths = []
    for i, data in enumerate(_halves(lambda v: measured_part(v, wedge), seed=6), start=1):
        paths.append(tmp_path / f"h{i}.mrc")
        write_volume(paths[-1], data, PIXEL)
    return paths[0], paths[1]


def _run_cli(*args):
    return CliRunner().invoke(fsc_command, [str(a) for a in args])


def test_cli_tilt_range_writes_the_two_curves(half_files, tmp_path):
    out, png = tmp_path / "fsc.json", tmp_path / "fsc.png"
    res = _run_cli(*half_files, "-o", out, "--tilt-min", "-50", "--tilt-max", "50", "--plot", png)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["directions"][-2:] == ["measured", "wedge"]
    assert set(data["resolution_A"]["0.143"]) == {*DIRECTIONS, *WEDGE_DIRECTIONS}
    assert len(data["fsc"]["wedge"]) == len(data["frequency_per_A"]) == len(data["n_voxels"]["measured"])
    assert data["wedge"]["tilt_min_deg"] == -50.0 and data["wedge"]["tilt_max_deg"] == 50.0
    measured = np.array([np.nan if v is None else v for v in data["fsc"]["measured"]], dtype=float)
    missing = np.array([np.nan if v is None else v for v in data["fsc"]["wedge"]], dtype=float)
    assert np.nanmean(measured[1:-3]) > 0.7 and abs(np.nanmean(missing[1:-3])) < 0.1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = tmp_path / "plain.json"
    assert _run_cli(*half_files, "-o", plain).exit_code == 0
    assert "wedge" not in json.loads(plain.read_text()) and "measured" not in json.loads(plain.read_text())["fsc"]


def test_cli_tilt_angles_file_and_bad_combinations(half_files, tmp_path):
    tlt = write_tilt_angles(tmp_path / "ts.tlt", GAP_ANGLES)
    out = tmp_path / "fsc.json"
    res = _run_cli(*half_files, "-o", out, "--tilt-angles", tlt)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["wedge"]["measured_intervals_deg"] == [[-60.0, -16.5], [16.5, 60.0]]
    assert data["tilt_angles"] == str(tlt)
    for args, needle in ((["--tilt-min", "-60"], "go together"),
                         (["--tilt-min", "60", "--tilt-max", "-60"], "must rise"),
                         (["--tilt-angles", tlt, "--tilt-min", "-60", "--tilt-max", "60"], "not both"),
                         (["--tilt-angles", tmp_path / "none.tlt"], "not found")):
        res = _run_cli(*half_files, "-o", tmp_path / "bad.json", *args)
        assert res.exit_code == 2 and needle in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad.json").exists()


# ------------------------------------------------------------------------------------- a row's wedge


def test_row_wedge_prefers_the_angle_file_and_reads_it_once(tmp_path, monkeypatch):
    write_tilt_angles(tmp_path / "ts.tlt", GAP_ANGLES)
    table = pd.DataFrame({"rlnIndex": [1, 2, 3], "rlnTiltMin": [-60.0, -45.0, -60.0], "rlnTiltMax": [60.0, 50.0, 60.0],
                          TILT_ANGLE_FILE: ["ts.tlt", "None", "ts.tlt"]})
    reads = []
    real = row_wedge.read_tilt_angles
    monkeypatch.setattr(row_wedge, "read_tilt_angles", lambda p: reads.append(p) or real(p))
    wedges = row_wedge.row_wedges(table, tmp_path / "tomograms.star")
    assert wedges == [Wedge.from_angles(GAP_ANGLES), Wedge.from_range(-45, 50), Wedge.from_angles(GAP_ANGLES)]
    assert len(reads) == 1
    no_column = table.drop(columns=[TILT_ANGLE_FILE])
    assert row_wedge.row_wedge(no_column.iloc[0], tmp_path / "tomograms.star") == Wedge.from_range(-60, 60)
    (tmp_path / "one.tlt").write_text("10\n10\n")
    table.loc[1, TILT_ANGLE_FILE] = "one.tlt"
    with pytest.raises(InputError, match="one.tlt"):
        row_wedge.row_wedges(table, tmp_path / "tomograms.star")


def test_gold_standard_gives_each_row_its_wedge(tmp_path, monkeypatch):
    """The network, the predictions and the FSC itself are stand-ins: what is checked is which wedge reaches
    run_fsc.
    """
    write_tilt_angles(tmp_path / "ts.tlt", GAP_ANGLES)
    for half in (1, 2):
        (tmp_path / "results" / f"half{half}").mkdir(parents=True)
        (tmp_path / "results" / f"half{half}" / "model_final.keras").write_bytes(b"")
    star = tmp_path / "tomograms.star"
    rng = np.random.default_rng(0)
    for name in ("t1.mrc", "t2.mrc"):
        write_volume(tmp_path / name, rng.standard_normal((8, 8, 8)).astype(np.float32), 10.0)
    write_star(pd.DataFrame({"rlnIndex": [1, 2], "rlnMicrographName": ["t1.mrc", "t2.mrc"], "rlnPixelSize": [10.0] * 2,
                             "rlnTiltMin": [-60.0, -40.0], "rlnTiltMax": [60.0, 45.0],
                             TILT_ANGLE_FILE: ["ts.tlt", "None"]}), star)
    corrected = []
    seen = {}

    def fake_fsc(a, b, out_json, **kw):
        seen[Path(out_json).name] = kw["wedge"]
        return {"resolution_A": {"0.143": {"x": 1.0, "y": 1.0, "z": 1.0}}}

    monkeypatch.setattr(gold_standard.Network, "load", lambda self, tomograms=1: None)
    monkeypatch.setattr(predict, "correct_tomogram", lambda path, out, network, **_: corrected.append(out.name))
    monkeypatch.setattr(gold_standard, "run_fsc", fake_fsc)
    gold_standard.run_gold_standard(star, tmp_path / "results", tmp_path / "gold", average=False)
    assert corrected == ["t1_half1_corrected.mrc", "t2_half1_corrected.mrc", "t1_half2_corrected.mrc",
                         "t2_half2_corrected.mrc"]
    assert seen == {"t1_fsc.json": Wedge.from_angles(GAP_ANGLES), "t2_fsc.json": Wedge.from_range(-40, 45)}
