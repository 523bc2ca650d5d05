"""The report's "Where the halves disagree" section and its wedge check against the raw data.

Halves: maps computed from slabs equal the whole volume's map; halves that share structure get
a high median local correlation, independent noise halves a low one; without halves the section
says "not run". Wedge: a tomogram simulated from −50…+65° is flagged when its STAR gives the
mirrored range (or a mirrored angle file), and not when it gives the right one.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import PIXEL, SHAPE, _data_uris, _svgs, decode_png, make_run

from isonet_steps.core.disagreement import local_correlation
from isonet_steps.core.phantom import make_phantom
from isonet_steps.io.mrc import write_volume
from isonet_steps.io.star import write_star
from isonet_steps.io.tilt_angles import write_tilt_angles
from isonet_steps.report.build import build_report
from isonet_steps.report.halves import SMOOTH, WINDOW, xy_agreement, xz_agreement


def _section(text: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', text, re.S)
    assert match, f"no section {anchor}"
    return match.group(1)


def _median(text: str) -> float:
    match = re.search(r"Median local correlation (-?[\d.]+) inside the sample mask; (\d+)% of those voxels below 0.2",
                      text)
    assert match, "no summary line"
    return float(match.group(1))


# ------------------------------------------------------------------------------------ halves


def test_sections_from_slabs_equal_the_whole_volume_map():
    rng = np.random.default_rng(4)
    shared = rng.standard_normal((30, 41, 37)).astype(np.float32)
    a = shared + 0.8 * rng.standard_normal(shared.shape).astype(np.float32)
    b = shared + 0.8 * rng.standard_normal(shared.shape).astype(np.float32)
    whole = local_correlation(a, b, WINDOW, smooth=SMOOTH)
    # bands of 7 rows: many band edges inside the section, each must be invisible
    np.testing.assert_allclose(xy_agreement(a, b, 13, rows=7), whole[13], atol=1e-5)
    np.testing.assert_allclose(xy_agreement(a, b, 1), whole[1], atol=1e-5)
    np.testing.assert_allclose(xz_agreement(a, b, 20), whole[:, 20, :], atol=1e-5)
    np.testing.assert_allclose(xz_agreement(a, b, 40), whole[:, 40, :], atol=1e-5)


def _with_halves(root: Path, h1: np.ndarray, h2: np.ndarray) -> str:
    run = make_run(root, truth=False)
    write_volume(run / "corrected" / "tomo_half1_corrected.mrc", h1, PIXEL)
    write_volume(run / "corrected" / "tomo_half2_corrected.mrc", h2, PIXEL)
    write_volume(run / "corrected" / "tomo_corrected.mrc", (h1 + h2) / 2, PIXEL)
    return build_report(run)


def test_halves_that_share_structure_agree_and_independent_noise_does_not(tmp_path):
    rng = np.random.default_rng(7)
    truth = make_phantom(SHAPE, seed=5, pixel_size=PIXEL).ground_truth
    truth = (truth - truth.mean()) / truth.std()
    noise = [0.5 * rng.standard_normal(SHAPE).astype(np.float32) for _ in range(2)]
    shared = _with_halves(tmp_path / "shared", truth + noise[0], truth + noise[1])
    section = _section(shared, "halves")
    assert "not run" not in section.lower()
    # per section: the corrected slice (grey) and its agreement map (colour); XY at two depths and XZ
    sources = _data_uris(section)
    assert len(sources) == 6
    pictures = [decode_png(base64.b64decode(s.split(",", 1)[1])) for s in sources]
    colour = [p for p in pictures if p.shape[2] == 3]
    assert len(colour) == 3 and all(p.std() > 5 for p in colour)
    assert [p.shape[:2] for p in colour] == [p.shape[:2] for p in pictures if p.shape[2] == 1]
    assert "XZ at y = 40" in section and "XY at z = 16" in section
    assert len(_svgs(section)) == 1 and "local correlation of the two corrected halves" in section  # colour bar
    assert "network may be inventing" in section
    high = _median(section)

    independent = _with_halves(tmp_path / "noise", *(rng.standard_normal(SHAPE).astype(np.float32) for _ in range(2)))
    low = _median(_section(independent, "halves"))
    assert high > 0.6, high
    assert abs(low) < 0.15, low
    fraction = int(re.search(r"(\d+)% of those voxels below 0.2", _section(independent, "halves")).group(1))
    assert fraction > 90


def test_run_without_halves_says_not_run(tmp_path):
    run = make_run(tmp_path, halves=False, truth=False)
    section = _section(build_report(run), "halves")
    assert "Not run: no corrected halves" in section
    assert "<img" not in section and "<svg" not in section


# ------------------------------------------------------------------------------------ wedge check


@pytest.fixture(scope="module")
def lopsided(tmp_path_factory) -> Path:
    """A raw tomogram simulated from a tilt series of −50…+65° (small: 48 × 64 × 64 voxels)."""
    path = tmp_path_factory.mktemp("wedge") / "lopsided.mrc"
    ph = make_phantom((48, 64, 64), tilt_min=-50.0, tilt_max=65.0, tilt_step=2.5, snr=0.5, seed=1, pixel_size=PIXEL)
    write_volume(path, ph.tomogram, PIXEL)
    return path


def _wedge_report(root: Path, tomogram: Path, tilt: tuple[float, float], tilt_file: Path | None = None) -> str:
    root.mkdir(parents=True, exist_ok=True)
    row = {"rlnIndex": [1], "rlnMicrographName": [str(tomogram)], "rlnPixelSize": [PIXEL],
           "rlnTiltMin": [tilt[0]], "rlnTiltMax": [tilt[1]]}
    if tilt_file is not None:
        row["rlnTiltAngleFile"] = [str(tilt_file)]
    write_star(pd.DataFrame(row), root / "tomograms.star")
    return _section(build_report(root), "power")


def test_the_right_range_agrees(tmp_path, lopsided):
    power = _wedge_report(tmp_path, lopsided, (-50.0, 65.0))
    assert "warnbox" not in power and "looks mirrored" not in power
    assert "wedge -50..65°: agrees" in power
    assert "estimated from the raw data" in power and "given wedge" in power  # the legend of the figure


def test_the_mirrored_range_is_flagged_with_the_fix(tmp_path, lopsided):
    power = _wedge_report(tmp_path, lopsided, (-65.0, 50.0))
    assert '<div class="warnbox">' in power and "The tilt range looks mirrored" in power
    assert "wedge -65..50°: mirrored" in power
    assert "set rlnTiltMin to -50 and rlnTiltMax to 65 for tomogram 1" in power
    # the estimated edges sit near the true range, not the given one
    low, high = (float(v) for v in re.search(r"data measured ~(-?\d+)\.\.(-?\d+)°", power).groups())
    assert abs(low + 50) < 8 and abs(high - 65) < 8


def test_a_mirrored_angle_file_is_flagged_and_drawn_from_its_intervals(tmp_path, lopsided):
    # the series as a mirrored angle list with a hole (three views dropped): the file, not the range, is checked
    angles = [a for a in np.arange(-65.0, 50.1, 2.5) if not -22.0 < a < -13.0]
    tlt = write_tilt_angles(tmp_path / "lopsided.tlt", angles)
    power = _wedge_report(tmp_path / "run", lopsided, (-60.0, 60.0), tlt)
    assert "The tilt range looks mirrored" in power
    assert f"negate every angle in {tlt}" in power
    assert "1 gap" in power  # the wedge came from the angles (with its gap), not from rlnTiltMin/Max
