"""RELION 5 files written by RELION, not by us: its own test project (tests/data/relion5, provenance there).

The tomogram set names five tomograms of 4000 × 4000 × 3000 pixels at 1.35 Å, binned 8, and a
tilt-series STAR each, with CTFFIND's defoci and the alignment's angles. RELION's tests ship no
tomogram volumes, so each test writes a small stand-in MRC at the path the set names, with the
voxel size RELION implies (1.35 × 8 Å). The expected values are read from the files here with a
plain line parser of the loop blocks, independent of starfile and of isonet-nf's reader.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import starfile

from isonet_steps.io.errors import InputError
from isonet_steps.io.mrc import write_volume
from isonet_steps.io.relion5 import is_relion5_star, read_relion5_project, write_relion5_tomograms
from isonet_steps.io.star import read_tomogram_star
from isonet_steps.io.tilt_angles import read_tilt_angles
from isonet_steps.steps.prepare_star import run_prepare_star

DATA = Path(__file__).parent / "data" / "relion5"
GLOBAL = Path("tilt_series_metadata") / "tilt_series.star"
NAMES = ["220728_TS_01", "220728_TS_03", "220728_TS_43", "220728_TS_45", "220728_TS_54"]
VOXEL = 1.35 * 8.0


def _loop_rows(path: Path, block: str) -> list[dict[str, str]]:
    """The rows of ``data_<block>``'s loop as text: labels from the ``_rln... #n`` lines, cells split on blanks.

    The tilt-series rows hold bracketed matrices without blanks inside (``[a,b,c,d]``), so a
    split on whitespace gives one cell per column.
    """
    labels: list[str] = []
    rows: list[dict[str, str]] = []
    inside = False
    for line in path.read_text().splitlines():
        words = line.split()
        if words[:1] == [f"data_{block}"]:
            inside = True
            continue
        if not inside or not words or words[0] == "loop_":
            continue
        if words[0].startswith("data_"):
            break
        if words[0].startswith("_"):
            labels.append(words[0][1:])
        else:
            assert len(words) == len(labels), f"{path}: a row of {len(words)} cells for {len(labels)} labels"
            rows.append(dict(zip(labels, words)))
    return rows


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of RELION's test project with a stand-in tomogram at every path its set names."""
    root = tmp_path / "project"
    shutil.copytree(DATA / "test_project_directory", root)
    for i, row in enumerate(_loop_rows(root / GLOBAL, "global")):
        target = root / row["rlnTomoReconstructedTomogram"]
        target.parent.mkdir(parents=True, exist_ok=True)
        write_volume(target, np.random.default_rng(i).normal(size=(8, 12, 16)).astype(np.float32), VOXEL)
    return root


def test_data_are_relions_files_unchanged():
    """The copies match the checksums taken when they were copied (tests/data/relion5/README.md)."""
    for line in (DATA / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name


def test_reads_relions_tomogram_set(project):
    star = project / GLOBAL
    assert is_relion5_star(star)
    read = read_relion5_project(star)
    assert read.project_dir == project.absolute()  # found by walking up from tilt_series_metadata/
    assert [t.tomo_name for t in read.tomograms] == NAMES
    for tomogram, row in zip(read.tomograms, _loop_rows(star, "global")):
        series = _loop_rows(project / row["rlnTomoTiltSeriesStarFile"], tomogram.tomo_name)
        assert len(series) > 30  # a real tilt series, not a handful of rows
        assert tomogram.pixel_size == pytest.approx(float(row["rlnTomoTiltSeriesPixelSize"])
                                                    * float(row["rlnTomoTomogramBinning"]))
        assert (tomogram.voltage, tomogram.cs, tomogram.amplitude_contrast) == (300.0, 2.7, 0.1)
        # the aligned angles RELION reconstructs with, not the stage's nominal ones
        assert tomogram.tilt_source == "rlnTomoYTilt"
        assert tomogram.tilt_angles == pytest.approx(sorted(float(r["rlnTomoYTilt"]) for r in series))
        flat = min(series, key=lambda r: abs(float(r["rlnTomoNominalStageTiltAngle"])))
        assert tomogram.defocus == pytest.approx((float(flat["rlnDefocusU"]) + float(flat["rlnDefocusV"])) / 2)
        assert tomogram.half1 is None and tomogram.half2 is None
        assert tomogram.shape == (8, 12, 16)


def test_prepare_star_on_relions_set(project, tmp_path):
    out = run_prepare_star(project / GLOBAL, tmp_path / "run" / "tomograms.star", wedge_check="off",
                           number_subtomos=7)
    table = read_tomogram_star(out)
    assert list(table["rlnTomoName"].astype(str)) == NAMES
    assert list(table["rlnIndex"]) == [1, 2, 3, 4, 5]
    assert (table["rlnNumberSubtomo"] == 7).all()
    assert np.allclose(table["rlnPixelSize"], VOXEL)
    read = read_relion5_project(project / GLOBAL)
    for (_, row), tomogram in zip(table.iterrows(), read.tomograms):
        angles = read_tilt_angles(Path(row["rlnTiltAngleFile"]))
        assert np.allclose(sorted(angles), tomogram.tilt_angles)
        assert (row["rlnTiltMin"], row["rlnTiltMax"]) == pytest.approx((min(angles), max(angles)))
        assert row["rlnDefocus"] == pytest.approx(tomogram.defocus)
        assert Path(row["rlnMicrographName"]) == tomogram.tomogram


def test_corrected_set_keeps_relions_own_columns(project):
    read = read_relion5_project(project / GLOBAL)
    corrected = {}
    for i, tomogram in enumerate(read.tomograms[:2]):
        path = project / "External" / "job010" / "corrected" / f"{tomogram.tomo_name}_corrected.mrc"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_volume(path, np.zeros(tomogram.shape, np.float32) + i, VOXEL)
        corrected[tomogram.tomo_name] = path
    out = write_relion5_tomograms(project / "External" / "job010" / "tomograms.star", read, corrected)
    table = starfile.read(out, always_dict=True, parse_as_string=["rlnTomoName"])["global"]
    original = _loop_rows(project / GLOBAL, "global")[:2]
    assert list(table["rlnTomoName"]) == NAMES[:2]
    assert list(table["rlnTomoReconstructedTomogram"]) == [
        f"External/job010/corrected/{n}_corrected.mrc" for n in NAMES[:2]]
    # what RELION's next jobs read is carried over as RELION wrote it
    for column in ("rlnTomoTiltSeriesStarFile", "rlnEtomoDirectiveFile"):
        assert list(table[column]) == [r[column] for r in original]
    for column in ("rlnMicrographOriginalPixelSize", "rlnTomoHand", "rlnTomoTiltSeriesPixelSize",
                   "rlnTomoTomogramBinning", "rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"):
        assert table[column].to_numpy(float) == pytest.approx([float(r[column]) for r in original])
    assert [t.tomogram for t in read_relion5_project(out).tomograms] == [p.absolute() for p in corrected.values()]


def test_unbinned_header_is_refused_naming_the_binning(project):
    """A tomogram whose header says 1.35 Å (the tilt series' pixel) while the set says binning 8."""
    first = _loop_rows(project / GLOBAL, "global")[0]
    write_volume(project / first["rlnTomoReconstructedTomogram"], np.zeros((8, 12, 16), np.float32), 1.35)
    with pytest.raises(InputError, match="rlnTomoTomogramBinning") as error:
        read_relion5_project(project / GLOBAL)
    assert "\n" not in str(error.value) and "10.8" in str(error.value)
