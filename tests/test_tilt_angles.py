"""Tilt-angle files: read IMOD/AreTomo .tlt, find it beside a tomogram, write it atomically."""

from __future__ import annotations

import numpy as np
import pytest

from isonet_steps.core.wedge import Wedge
from isonet_steps.io import atomic
from isonet_steps.io.errors import InputError
from isonet_steps.io.tilt_angles import find_tilt_file, read_tilt_angles, write_tilt_angles


def test_reads_imod_layout_with_blank_lines_and_spaces(tmp_path):
    path = tmp_path / "TS_01.tlt"
    path.write_text("  -59.97\n -56.98 \n\n\t-53.99\r\n   0.01\n  65.02\n\n")
    assert read_tilt_angles(path) == (-59.97, -56.98, -53.99, 0.01, 65.02)


def test_keeps_file_order_dose_symmetric(tmp_path):
    path = tmp_path / "ds.tlt"
    path.write_text("0\n3\n-3\n-6\n6\n")
    angles = read_tilt_angles(path)
    assert angles == (0.0, 3.0, -3.0, -6.0, 6.0)
    assert Wedge.from_angles(angles).intervals == ((-6.0, 6.0),)


@pytest.mark.parametrize(("content", "line", "words"), [
    ("-60\n-57\nabc\n", 3, "not a number"),
    ("-60\n\n95.5\n", 3, "outside ±90"),
    ("-60\nnan\n", 2, "outside ±90"),
    ("-60 1.0\n-57 2.0\n", 1, "one angle per line"),
])
def test_bad_lines_name_the_file_the_line_and_the_fix(tmp_path, content, line, words):
    path = tmp_path / "bad.tlt"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        read_tilt_angles(path)
    message = str(err.value)
    assert str(path) in message and f"line {line}" in message and words in message
    assert "\n" not in message


@pytest.mark.parametrize("content", ["", "\n\n", "12.5\n"])
def test_fewer_than_two_angles_are_refused(tmp_path, content):
    path = tmp_path / "short.tlt"
    path.write_text(content)
    with pytest.raises(InputError, match="at least 2"):
        read_tilt_angles(path)


def test_missing_file_and_binary_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_tilt_angles(tmp_path / "nope.tlt")
    binary = tmp_path / "b.tlt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(InputError, match=str(binary)):
        read_tilt_angles(binary)


def test_finds_the_refined_tlt_beside_the_tomogram_before_the_rawtlt(tmp_path):
    tomo = tmp_path / "TS_01.mrc"
    tomo.write_bytes(b"")
    assert find_tilt_file(tomo) is None
    (tmp_path / "TS_01.rawtlt").write_text("-60\n60\n")
    assert find_tilt_file(tomo) == tmp_path / "TS_01.rawtlt"
    (tmp_path / "TS_01.tlt").write_text("-59\n61\n")
    assert find_tilt_file(tomo) == tmp_path / "TS_01.tlt"
    (tmp_path / "TS_010.tlt").write_text("-1\n1\n")  # a neighbour's file is never taken
    assert find_tilt_file(tmp_path / "TS_02.mrc") is None


@pytest.mark.parametrize("name", ["TS_01_rec.mrc", "TS_01.rec", "TS_01_full_rec.mrc", "TS_01.MRC"])
def test_reconstruction_names_find_their_series_file(tmp_path, name):
    (tmp_path / "TS_01.tlt").write_text("-60\n60\n")
    assert find_tilt_file(tmp_path / name) == tmp_path / "TS_01.tlt"


def test_write_then_read_round_trips_to_the_millidegree(tmp_path):
    angles = np.array([-50.123, -47.0, 0.0005, 12.25, 65.0])
    path = write_tilt_angles(tmp_path / "sub" / "TS_01.tlt", angles)
    assert np.allclose(read_tilt_angles(path), angles, atol=5e-4)
    assert path.read_text().count("\n") == len(angles)


def test_write_is_atomic_and_refuses_bad_angles(tmp_path, monkeypatch):
    path = tmp_path / "TS_01.tlt"
    write_tilt_angles(path, [-60, 60])
    with pytest.raises(InputError, match="±90"):
        write_tilt_angles(path, [-60, 100])
    with pytest.raises(InputError, match="at least 2"):
        write_tilt_angles(path, [1])
    assert read_tilt_angles(path) == (-60.0, 60.0)  # the old file untouched

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError):
        write_tilt_angles(path, [-50, 65])
    assert read_tilt_angles(path) == (-60.0, 60.0)
    assert [p.name for p in tmp_path.iterdir()] == ["TS_01.tlt"]  # no temporary left

