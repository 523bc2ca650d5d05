"""RELION 5 projects: tomograms.star + tilt-series STARs in, isonet-nf rows out, a RELION 5 tomograms.star back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from isonet_steps.io.errors import InputError
from isonet_steps.io.mrc import write_volume
from isonet_steps.io.relion5 import (
    read_relion5_project,
    tomogram_table,
    write_relion5_tomograms,
)
from isonet_steps.io.star import read_tomogram_star, write_star
from isonet_steps.io.tilt_angles import write_tilt_angles

SHAPE = (8, 12, 16)  # Z, Y, X of every tiny tomogram
TS_PIXEL, BINNING = 1.35, 8.0
VOXEL = TS_PIXEL * BINNING
JOB = "Tomograms/job007"

#: TS_01: dose-symmetric order, aligned angle = stage angle + 2.5° (a pretilt RELION's alignment found).
STAGE_01 = [0.0, 3.0, -3.0, -6.0, 6.0, 9.0, -9.0]
YTILT_01 = [a + 2.5 for a in STAGE_01]
DEFOCUS_01 = [(39424.76, 38845.81), (39158.6, 38873.5), (39430.1, 39249.9), (40324.4, 38719.6),
              (39574.3, 39277.2), (39800.0, 39700.0), (39900.0, 39600.0)]
#: TS_02: uneven range, stage angles only (no alignment columns), zero-tilt image not first.
STAGE_02 = [-48.0, -45.0, -40.0, -20.0, 1.0, 15.0, 40.0, 62.0]
DEFOCUS_02 = [(30000.0 + 100 * i, 29000.0 + 100 * i) for i in range(len(STAGE_02))]


def _loop(block: str, columns: dict[str, list]) -> str:
    """One RELION-style block: data_<name>, loop_, '_label #n' lines, whitespace-separated rows."""
    names = list(columns)
    lines = [f"data_{block}", "", "loop_"] + [f"_{c} #{i}" for i, c in enumerate(names, start=1)]
    for r in range(len(columns[names[0]])):
        lines.append(" ".join(str(columns[c][r]) for c in names))
    return "\n".join(lines) + "\n\n"


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n# version 50001\n\n" + text)
    return path


def _volume(path: Path, voxel: float = VOXEL, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_volume(path, np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32), voxel)
    return path


def _tilt_series_text(name: str, stage: list[float], defocus: list[tuple[float, float]], ytilt=None) -> str:
    columns: dict[str, list] = {
        "rlnMicrographMovieName": [f"frames/{name}_{i:03d}.mrc" for i in range(len(stage))],
        "rlnTomoNominalStageTiltAngle": stage,
        "rlnMicrographPreExposure": [3.0 * i for i in range(len(stage))],
        "rlnDefocusU": [u for u, _ in defocus],
        "rlnDefocusV": [v for _, v in defocus],
        "rlnDefocusAngle": [45.0] * len(stage),
    }
    if ytilt is not None:
        columns.update({"rlnTomoXTilt": [0.0] * len(stage), "rlnTomoYTilt": ytilt,
                        "rlnTomoZRot": [85.2] * len(stage)})
    return _loop(name, columns)


def _global(rows: list[dict]) -> str:
    return _loop("global", {c: [r[c] for r in rows] for c in rows[0]})


def _row(name: str, *, halves: bool, binning: float = BINNING) -> dict:
    row = {
        "rlnTomoName": name, "rlnVoltage": 300.0, "rlnSphericalAberration": 2.7, "rlnAmplitudeContrast": 0.1,
        "rlnMicrographOriginalPixelSize": 0.675, "rlnTomoHand": -1.0, "rlnOpticsGroupName": "optics1",
        "rlnTomoTiltSeriesPixelSize": TS_PIXEL,
        "rlnTomoTiltSeriesStarFile": f"AlignTiltSeries/job004/tilt_series/{name}.star",
        "rlnEtomoDirectiveFile": f"AlignTiltSeries/job004/external/{name}/{name}.edf",
        "rlnTomoTomogramBinning": binning, "rlnTomoSizeX": SHAPE[2] * 8, "rlnTomoSizeY": SHAPE[1] * 8,
        "rlnTomoSizeZ": SHAPE[0] * 8, "rlnTomoReconstructedTomogram": f"{JOB}/tomograms/rec_{name}.mrc",
        "rlnTomoReconstructedTomogramProj2D": f"{JOB}/projections/rec_{name}.mrc",
    }
    if halves:
        row["rlnTomoReconstructedTomogramHalf1"] = f"{JOB}/tomograms/rec_{name}_half1.mrc"
        row["rlnTomoReconstructedTomogramHalf2"] = f"{JOB}/tomograms/rec_{name}_half2.mrc"
    return row


def _project(root: Path) -> Path:
    """A two-tomogram RELION 5 project under ``root``; returns its Reconstruct job's tomograms.star."""
    series = (("TS_01", STAGE_01, DEFOCUS_01, YTILT_01), ("TS_02", STAGE_02, DEFOCUS_02, None))
    for name, stage, defocus, ytilt in series:
        _write_text(root / f"AlignTiltSeries/job004/tilt_series/{name}.star",
                    _tilt_series_text(name, stage, defocus, ytilt))
        _volume(root / f"{JOB}/tomograms/rec_{name}.mrc")
    _volume(root / f"{JOB}/tomograms/rec_TS_01_half1.mrc", seed=1)
    _volume(root / f"{JOB}/tomograms/rec_TS_01_half2.mrc", seed=2)
    rows = [_row("TS_01", halves=True), _row("TS_02", halves=True)]
    for h in (1, 2):
        rows[1][f"rlnTomoReconstructedTomogramHalf{h}"] = "None"  # RELION's empty cell
    return _write_text(root / f"{JOB}/tomograms.star", _global(rows))


def _error(call) -> str:
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_reads_a_relion5_project(tmp_path):
    root = tmp_path / "project"
    star = _project(root)
    project = read_relion5_project(star)
    assert project.project_dir == root.absolute()  # found by walking up from Tomograms/job007
    one, two = project.tomograms
    assert (one.tomo_name, two.tomo_name) == ("TS_01", "TS_02")
    assert one.tomogram == root.absolute() / JOB / "tomograms/rec_TS_01.mrc"
    assert one.pixel_size == pytest.approx(10.8) and two.pixel_size == pytest.approx(10.8)
    # aligned angles (rlnTomoYTilt, with the 2.5° offset), ascending; the stage's 0° image gives the defocus
    assert one.tilt_source == "rlnTomoYTilt"
    assert one.tilt_angles == pytest.approx(sorted(YTILT_01))
    assert one.defocus == pytest.approx((39424.76 + 38845.81) / 2)
    assert two.tilt_source == "rlnTomoNominalStageTiltAngle"
    assert two.tilt_angles == pytest.approx(STAGE_02)
    assert two.defocus == pytest.approx((30400.0 + 29400.0) / 2)  # the 1° image, fifth in the STAR
    assert one.half1 == root.absolute() / JOB / "tomograms/rec_TS_01_half1.mrc"
    assert one.half2 is not None and one.half2.name == "rec_TS_01_half2.mrc"
    assert two.half1 is None and two.half2 is None
    assert (one.voltage, one.cs, one.amplitude_contrast) == (300.0, 2.7, 0.1)
    assert one.shape == SHAPE


def test_table_in_isonet_columns_survives_the_tomogram_reader(tmp_path):
    project = read_relion5_project(_project(tmp_path / "p"))
    tlt = {t.tomo_name: write_tilt_angles(tmp_path / "out" / f"{t.tomo_name}.tlt", t.tilt_angles)
           for t in project.tomograms}
    written = write_star(tomogram_table(project, number_subtomos=7, tilt_angle_files=tlt), tmp_path / "out/t.star")
    table = read_tomogram_star(written)
    assert list(table["rlnIndex"]) == [1, 2]
    assert list(table["rlnTomoName"]) == ["TS_01", "TS_02"]
    assert table["rlnPixelSize"].to_numpy() == pytest.approx([10.8, 10.8])
    assert table["rlnDefocus"].to_numpy() == pytest.approx([(39424.76 + 38845.81) / 2, 29900.0])
    assert table["rlnTiltMin"].to_numpy() == pytest.approx([-6.5, -48.0])
    assert table["rlnTiltMax"].to_numpy() == pytest.approx([11.5, 62.0])
    assert list(table["rlnNumberSubtomo"]) == [7, 7]
    assert Path(table.at[0, "rlnTomoReconstructedTomogramHalf1"]).is_file()
    assert table.at[1, "rlnTomoReconstructedTomogramHalf1"] == "None"
    assert table["rlnVoltage"].to_numpy() == pytest.approx([300.0, 300.0])
    angles = np.loadtxt(table.at[1, "rlnTiltAngleFile"])
    assert angles == pytest.approx(STAGE_02)


def test_explicit_project_dir_for_a_star_outside_the_project(tmp_path):
    root = tmp_path / "project"
    star = _project(root)
    moved = tmp_path / "elsewhere" / "tomograms.star"
    moved.parent.mkdir()
    moved.write_text(star.read_text())
    message = _error(lambda: read_relion5_project(moved))
    assert str(moved) in message and str(moved.parent.absolute()) in message and "project folder" in message
    project = read_relion5_project(moved, project_dir=root)
    assert project.tomograms[0].tomogram.is_file()


def _edit_global(star: Path, old: str, new: str) -> None:
    text = star.read_text()
    assert old in text
    star.write_text(text.replace(old, new, 1))


def _drop_label(star: Path, label: str) -> None:
    """Remove a column from a hand-written block: its label line and that field of every row."""
    lines = star.read_text().splitlines()
    labels = [i for i, line in enumerate(lines) if line.startswith("_")]
    k = next(n for n, i in enumerate(labels) if lines[i].split()[0] == f"_{label}")
    del lines[labels[k]]
    for i in range(labels[-1], len(lines)):
        fields = lines[i].split()
        if len(fields) == len(labels):
            del fields[k]
            lines[i] = " ".join(fields)
    star.write_text("\n".join(lines) + "\n")


BAD_PROJECTS = {
    "no data_global": (lambda r, s: _edit_global(s, "data_global", "data_tomos"), "tomograms.star", "data_global"),
    "no rlnTomoHand": (lambda r, s: _drop_label(s, "rlnTomoHand"), "tomograms.star", "rlnTomoHand"),
    "RELION 4 set": (lambda r, s: _drop_label(s, "rlnTomoTiltSeriesStarFile"), "tomograms.star", "RELION 4"),
    "tomogram missing": (lambda r, s: (r / JOB / "tomograms/rec_TS_02.mrc").unlink(), "tomograms.star",
                         "rec_TS_02.mrc"),
    "one half only": (lambda r, s: _edit_global(s, f"{JOB}/tomograms/rec_TS_01_half2.mrc", "None"), "tomograms.star",
                      "rlnTomoReconstructedTomogramHalf2"),
    "half file missing": (lambda r, s: (r / JOB / "tomograms/rec_TS_01_half1.mrc").unlink(), "tomograms.star",
                          "rec_TS_01_half1.mrc"),
    "halves, no tomogram": (lambda r, s: _edit_global(s, f"{JOB}/tomograms/rec_TS_01.mrc", "None"), "tomograms.star",
                            "denoising"),
    "tilt-series STAR missing": (lambda r, s: (r / "AlignTiltSeries/job004/tilt_series/TS_02.star").unlink(),
                                 "tomograms.star", "TS_02.star"),
    "block missing": (lambda r, s: _edit_global(r / "AlignTiltSeries/job004/tilt_series/TS_02.star", "data_TS_02",
                                                "data_TS_99"), "TS_02.star", "data_TS_02"),
    "no angles": (lambda r, s: _drop_label(r / "AlignTiltSeries/job004/tilt_series/TS_02.star",
                                           "rlnTomoNominalStageTiltAngle"), "TS_02.star", "tilt angles"),
    "no defocus": (lambda r, s: _drop_label(r / "AlignTiltSeries/job004/tilt_series/TS_01.star", "rlnDefocusV"),
                   "TS_01.star", "rlnDefocusV"),
    "binning disagrees": (lambda r, s: _volume(r / JOB / "tomograms/rec_TS_02.mrc", voxel=5.4), "rec_TS_02.mrc",
                          "10.8"),
    "path resolves nowhere": (lambda r, s: _edit_global(s, "AlignTiltSeries/job004/tilt_series/TS_01.star",
                                                        "Gone/job001/TS_01.star"), "tomograms.star",
                              "Gone/job001/TS_01.star"),
    "duplicate names": (lambda r, s: _edit_global(s, "\nTS_02 ", "\nTS_01 "), "tomograms.star", "TS_01"),
}


@pytest.mark.parametrize("case", list(BAD_PROJECTS))
def test_bad_projects_are_one_line_naming_the_file(tmp_path, case):
    root = tmp_path / "project"
    star = _project(root)
    read_relion5_project(star)  # the intact project reads
    spoil, file_named, detail = BAD_PROJECTS[case]
    spoil(root, star)
    message = _error(lambda: read_relion5_project(star))
    assert file_named in message and detail in message, message


def test_binning_mismatch_names_both_values_and_the_fix(tmp_path):
    root = tmp_path / "project"
    star = _project(root)
    _volume(root / JOB / "tomograms/rec_TS_01.mrc", voxel=5.4)
    message = _error(lambda: read_relion5_project(star))
    assert "5.4" in message and "10.8" in message and "1.35" in message and "rlnTomoTomogramBinning" in message


def test_binning_absent_means_one(tmp_path):
    """RELION writes rlnTomoTomogramBinning only when it is not 1."""
    root = tmp_path / "project"
    star = _project(root)
    _drop_label(star, "rlnTomoTomogramBinning")
    for name in ("rec_TS_01", "rec_TS_01_half1", "rec_TS_01_half2", "rec_TS_02"):
        _volume(root / JOB / f"tomograms/{name}.mrc", voxel=TS_PIXEL)
    assert [t.pixel_size for t in read_relion5_project(star).tomograms] == pytest.approx([TS_PIXEL, TS_PIXEL])


REQUIRED_BY_RELION = ("rlnTomoName", "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast",
                      "rlnMicrographOriginalPixelSize", "rlnTomoHand", "rlnTomoTiltSeriesPixelSize",
                      "rlnTomoTomogramBinning", "rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ",
                      "rlnTomoTiltSeriesStarFile", "rlnTomoReconstructedTomogram", "rlnEtomoDirectiveFile",
                      "rlnOpticsGroupName")


def test_written_star_is_a_relion5_tomogram_set_of_the_corrected_tomograms(tmp_path):
    root = tmp_path / "project"
    project = read_relion5_project(_project(root))
    inside = _volume(root / "External/job010/corrected/rec_TS_01_corrected.mrc", seed=5)
    outside = _volume(tmp_path / "results/rec_TS_02_corrected.mrc", seed=6)
    out = write_relion5_tomograms(root / "External/job010/tomograms.star", project,
                                  {"TS_01": inside, "TS_02": outside})
    blocks = starfile.read(out, always_dict=True)
    assert list(blocks) == ["global"]
    table = blocks["global"]
    assert set(REQUIRED_BY_RELION) <= set(table.columns)
    assert list(table["rlnTomoName"]) == ["TS_01", "TS_02"]
    assert list(table["rlnTomoReconstructedTomogram"]) == ["External/job010/corrected/rec_TS_01_corrected.mrc",
                                                           str(outside.absolute())]
    # raw halves and projections describe the uncorrected volume: not carried over
    assert not any(c.startswith("rlnTomoReconstructedTomogramHalf") or "Proj2D" in c for c in table.columns)
    assert list(table["rlnTomoTiltSeriesStarFile"]) == [f"AlignTiltSeries/job004/tilt_series/{n}.star"
                                                        for n in ("TS_01", "TS_02")]
    assert table["rlnTomoTomogramBinning"].to_numpy() == pytest.approx([BINNING, BINNING])
    assert list(table["rlnTomoSizeX"]) == [SHAPE[2] * 8] * 2
    # and it reads back as a project whose tomogram is the corrected file
    again = read_relion5_project(out)
    assert again.project_dir == root.absolute()
    assert again.tomograms[0].tomogram == inside.absolute()
    assert again.tomograms[1].tomogram == outside.absolute()
    assert again.tomograms[0].tilt_angles == project.tomograms[0].tilt_angles


def test_written_star_keeps_corrected_halves_and_fills_missing_geometry(tmp_path):
    root = tmp_path / "project"
    star = _project(root)
    for label in ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ", "rlnTomoTomogramBinning"):
        _drop_label(star, label)
    for name in ("rec_TS_01", "rec_TS_01_half1", "rec_TS_01_half2", "rec_TS_02"):
        _volume(root / JOB / f"tomograms/{name}.mrc", voxel=TS_PIXEL * 2)  # binning 2 lost from the STAR...
    with pytest.raises(InputError):
        read_relion5_project(star)  # ...is caught: header 2.7 Å, STAR says 1.35 × 1
    for name in ("rec_TS_01", "rec_TS_01_half1", "rec_TS_01_half2", "rec_TS_02"):
        _volume(root / JOB / f"tomograms/{name}.mrc", voxel=TS_PIXEL)
    project = read_relion5_project(star)
    corrected = {h: _volume(root / f"External/job010/TS_01_{h}_corrected.mrc", voxel=TS_PIXEL)
                 for h in ("full", "half1", "half2")}
    out = write_relion5_tomograms(root / "External/job010/tomograms.star", project, {"TS_01": corrected["full"]},
                                  corrected_halves={"TS_01": (corrected["half1"], corrected["half2"])})
    table = starfile.read(out, always_dict=True)["global"]
    assert list(table["rlnTomoName"]) == ["TS_01"]  # only the corrected tomograms
    assert table.at[0, "rlnTomoReconstructedTomogramHalf1"] == "External/job010/TS_01_half1_corrected.mrc"
    assert table.at[0, "rlnTomoReconstructedTomogramHalf2"] == "External/job010/TS_01_half2_corrected.mrc"
    assert table.at[0, "rlnTomoTomogramBinning"] == pytest.approx(1.0)
    assert (table.at[0, "rlnTomoSizeX"], table.at[0, "rlnTomoSizeY"], table.at[0, "rlnTomoSizeZ"]) == SHAPE[::-1]


def test_writer_refuses_a_corrected_file_of_another_grid(tmp_path):
    root = tmp_path / "project"
    project = read_relion5_project(_project(root))
    out = root / "External/job010/tomograms.star"
    wrong_voxel = _volume(tmp_path / "a.mrc", voxel=5.0)
    assert "5 Å" in _error(lambda: write_relion5_tomograms(out, project, {"TS_01": wrong_voxel}))
    wrong_shape = tmp_path / "b.mrc"
    write_volume(wrong_shape, np.ones((4, 12, 16), np.float32), VOXEL)
    assert "b.mrc" in _error(lambda: write_relion5_tomograms(out, project, {"TS_01": wrong_shape}))
    assert "TS_09" in _error(lambda: write_relion5_tomograms(out, project, {"TS_09": wrong_shape}))
    assert not out.exists()
    leftovers = [p for p in out.parent.iterdir()] if out.parent.exists() else []
    assert leftovers == []


def test_numeric_tomo_names_keep_their_zeros(tmp_path):
    """A tomo name 001 names block data_001; read as a number it would become 1 and the block be lost."""
    root = tmp_path / "project"
    _write_text(root / "ts/001.star", _tilt_series_text("001", STAGE_02, DEFOCUS_02))
    _volume(root / "rec/001.mrc")
    row = _row("001", halves=False)
    row.update({"rlnTomoTiltSeriesStarFile": "ts/001.star", "rlnTomoReconstructedTomogram": "rec/001.mrc"})
    star = _write_text(root / "Tomograms/job001/tomograms.star", _global([row]))
    project = read_relion5_project(star)
    assert project.tomograms[0].tomo_name == "001"
    out = write_relion5_tomograms(root / "x/tomograms.star", project, {"001": root / "rec/001.mrc"})
    assert "001" in out.read_text().split("data_global")[1]
    assert pd.notna(starfile.read(out, always_dict=True)["global"].iloc[0]["rlnTomoHand"])
    assert os.path.isfile(root / "rec/001.mrc")
