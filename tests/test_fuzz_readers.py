"""Property-based fuzzing of the readers a user's files reach first (issue #25, ``hypothesis``).

Random, truncated and malformed STAR, MRC, tilt-angle and RELION 5 files: each reader either returns
a well-formed result or raises :class:`InputError` (one line naming the file), never anything else,
so no command shows a traceback for a bad file. Examples are few and deadlines off: the suite runs
on slow 2-core machines.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isonet_steps.core.volume_checks import check_tomogram
from isonet_steps.io.errors import InputError
from isonet_steps.io.mrc import read_header, read_volume
from isonet_steps.io.relion5 import is_relion5_star, read_relion5_project
from isonet_steps.io.star import read_subtomo_star, read_tomogram_star
from isonet_steps.io.tilt_angles import read_tilt_angles

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GOOD_STAR = """
data_

loop_
_rlnIndex #1
_rlnMicrographName #2
_rlnPixelSize #3
_rlnDefocus #4
_rlnNumberSubtomo #5
_rlnTiltMin #6
_rlnTiltMax #7
1\ttomo.mrc\t10.0\t0.0\t100\t-60.0\t60.0
2\tother.mrc\t10.0\t30000\t50\t-45\t65
"""

GOOD_SUBTOMO_STAR = """
data_

loop_
_rlnSubtomoIndex #1
_rlnImageName #2
_rlnCubeSize #3
_rlnCropSize #4
_rlnPixelSize #5
_rlnTiltMin #6
_rlnTiltMax #7
1\tsubtomo/a.mrc\t16\t24\t10.0\t-60\t60
"""

STAR_WORDS = st.sampled_from(["data_", "data_global", "loop_", "_rlnIndex", "_rlnMicrographName", "_rlnPixelSize",
                              "_rlnTiltMin", "_rlnTiltMax", "_rlnTomoName", "#1", "#2", "nan", "inf", "-1e309",
                              "None", "\"", "'", "\t", "\n", "1", "0", "-60", "tomo.mrc", "\x00", "é"])


_FOLDER = tempfile.TemporaryDirectory(prefix="isonet-fuzz-")  # one folder, each example overwrites its file


def _file(content: bytes | str, name: str) -> Path:
    path = Path(_FOLDER.name) / name
    path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    return path


def _mutated(text: str, data) -> str:
    """``text`` cut short, with spans replaced by random STAR-ish words or characters."""
    text = text[: data.draw(st.integers(0, len(text)), label="cut")]
    for _ in range(data.draw(st.integers(0, 4), label="edits")):
        at = data.draw(st.integers(0, len(text)), label="at")
        span = data.draw(st.integers(0, 8), label="span")
        new = data.draw(st.one_of(STAR_WORDS, st.text(max_size=6)), label="new")
        text = text[:at] + new + text[at + span:]
    return text


def _only_input_errors(read, path: Path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read(path)
    except InputError as exc:
        line = str(exc)
        assert "\n" not in line and line.strip(), line
        return None


# ---- STAR files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("read, good, column", [(read_tomogram_star, GOOD_STAR, "rlnMicrographName"),
                                                (read_subtomo_star, GOOD_SUBTOMO_STAR, "rlnImageName")])
@FUZZ
@given(data=st.data())
def test_star_readers_take_any_mangled_star(read, good, column, data):
    table = _only_input_errors(read, _file(_mutated(good, data), "in.star"))
    if table is not None:
        assert column in table.columns and len(table) >= 1


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), st.lists(STAR_WORDS, max_size=40).map(" ".join)))
def test_star_readers_take_random_content(content):
    path = _file(content, "random.star")
    for read in (read_tomogram_star, read_subtomo_star):
        _only_input_errors(read, path)


@FUZZ
@given(data=st.data())
def test_relion5_reader_takes_a_mangled_project_star(data):
    text = _mutated("data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoTiltSeriesStarFile #2\n"
                    "_rlnTomoReconstructedTomogram #3\nTS_01\ttilt/TS_01.star\ttomos/TS_01.mrc\n", data)
    path = _file(text, "tomograms.star")
    if is_relion5_star(path):
        _only_input_errors(read_relion5_project, path)


# ---- MRC files -------------------------------------------------------------------------------------


def _good_mrc_bytes(shape=(8, 10, 12), seed=0) -> bytes:
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    path = _file(b"", "good.mrc")
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    return path.read_bytes()


GOOD_MRC = _good_mrc_bytes()


def _read_all(path: Path):
    header = read_header(path)
    volume = read_volume(path)
    assert volume.data.shape == header.shape and volume.data.dtype == np.float32
    assert np.isfinite(volume.data).all()
    return volume


@FUZZ
@given(cut=st.integers(0, len(GOOD_MRC)),
       edits=st.lists(st.tuples(st.integers(0, 1023), st.binary(min_size=1, max_size=4)), max_size=6))
def test_mrc_reader_takes_truncated_files_and_scrambled_headers(cut, edits):
    content = bytearray(GOOD_MRC[:cut])
    for at, new in edits:
        content[at:at + len(new)] = new
    path = _file(bytes(content), "t.mrc")
    _only_input_errors(_read_all, path)
    _only_input_errors(check_tomogram, path)


@FUZZ
@given(content=st.binary(max_size=2048))
def test_mrc_reader_takes_random_bytes(content):
    path = _file(content, "random.mrc")
    _only_input_errors(_read_all, path)
    _only_input_errors(check_tomogram, path)


@FUZZ
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=20),
       dtype=st.sampled_from([np.float32, np.float16, np.int16]))
def test_tomogram_check_takes_any_values(values, dtype):
    """Any voxel values at all: a checked tomogram or one line saying what is wrong with them."""
    data = np.resize(np.asarray(values, dtype=np.float64), (8, 9, 10))
    if np.issubdtype(dtype, np.integer):
        data = np.nan_to_num(np.clip(data, -30000, 30000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = data.astype(dtype)
    path = _file(b"", "t.mrc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.new(str(path), overwrite=True) as mrc:
            mrc.set_data(data)
    check = _only_input_errors(check_tomogram, path)
    if check is not None:
        assert check.stats.nonfinite == 0 and check.stats.maximum > check.stats.minimum


# ---- tilt-angle files --------------------------------------------------------------------------------


@FUZZ
@given(content=st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                       st.sampled_from(["", "#", "-60", "60", "1e400", "0x10", "\t", "a b"])),
             max_size=30).map("\n".join)))
def test_tilt_angle_reader_takes_any_text(content):
    path = _file(content, "t.tlt")
    angles = _only_input_errors(read_tilt_angles, path)
    if angles is not None:
        assert len(angles) >= 1 and all(np.isfinite(a) and -90 <= a <= 90 for a in angles)
