"""isonet fsc on the command line: JSON contents, plot, and one-line errors for bad input."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from isonet_steps.cli.fsc import command
from isonet_steps.cli.main import cli
from isonet_steps.io.mrc import write_volume

DIRECTIONS = ("global", "x", "y", "z", "xy", "xz", "yz")
SHAPE = (24, 32, 32)


@pytest.fixture
def halves(tmp_path):
    """Two noisy copies of one random volume, an identical copy, and a spherical mask (8 Å voxels)."""
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(SHAPE).astype(np.float32)
    paths = {}
    for name, data in (("h1", signal + 0.5 * rng.standard_normal(SHAPE)),
                       ("h2", signal + 0.5 * rng.standard_normal(SHAPE)),
                       ("same", signal)):
        paths[name] = tmp_path / f"{name}.mrc"
        write_volume(paths[name], data, 8.0)
    z, y, x = np.indices(SHAPE) - (np.array(SHAPE)[:, None, None, None] - 1) / 2
    paths["mask"] = tmp_path / "mask.mrc"
    write_volume(paths["mask"], (z**2 + y**2 + x**2 < 10**2), 8.0, dtype=np.int8)
    return paths


def run(args):
    return CliRunner().invoke(command, [str(a) for a in args])


def test_identical_halves_report_nyquist_everywhere(halves, tmp_path):
    out = tmp_path / "out" / "fsc.json"
    res = run([halves["same"], halves["same"], "-o", out])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["pixel_size_A"] == pytest.approx(8.0)  # from the header
    assert data["nyquist_A"] == pytest.approx(16.0)
    assert set(data["resolution_A"]) == {"0.5", "0.143"}
    for key in ("0.5", "0.143"):
        assert set(data["resolution_A"][key]) == set(DIRECTIONS)
        for d in DIRECTIONS:
            assert data["resolution_A"][key][d] == pytest.approx(16.0)
    freq = data["frequency_per_A"]
    assert len(freq) == max(SHAPE) // 2
    assert freq[0] == pytest.approx(1 / (32 * 8.0)) and freq[-1] == pytest.approx(1 / 16.0)
    for d in DIRECTIONS:
        values = [v for v in data["fsc"][d] if v is not None]
        assert len(data["fsc"][d]) == len(freq) == len(data["n_voxels"][d])
        assert values and np.allclose(values, 1.0, atol=1e-6)
    assert data["half1"] == str(halves["same"]) and data["mask"] is None
    assert list(out.parent.iterdir()) == [out]  # written atomically: no temporary file left


def test_noisy_halves_pixel_override_mask_and_plot(halves, tmp_path):
    out, png = tmp_path / "fsc.json", tmp_path / "plots" / "fsc.png"
    res = run([halves["h1"], halves["h2"], "-o", out, "--pixel-size", "4", "--mask", halves["mask"],
               "--cone_angle", "25", "--plot", png])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["pixel_size_A"] == 4.0 and data["nyquist_A"] == 8.0 and data["cone_angle_deg"] == 25.0
    assert data["mask"] == str(halves["mask"]) and data["mask_sigma_voxels"] == 2.0
    glob = np.array(data["fsc"]["global"], dtype=float)
    assert 0.5 < np.nanmean(glob) < 0.99  # correlated, but not identical
    raw = png.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", raw[16:24])
    assert (width, height) == (640, 400)


def test_reachable_from_the_isonet_group(halves, tmp_path):
    out = tmp_path / "g.json"
    res = CliRunner().invoke(cli, ["fsc", str(halves["h1"]), str(halves["h2"]), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file()


def _bad(tmp_path, name, shape=SHAPE, voxel=8.0, data=None):
    path = tmp_path / name
    arr = np.random.default_rng(1).standard_normal(shape) if data is None else data
    write_volume(path, arr, voxel, dtype=np.int8 if name.startswith("mask") else np.float32)
    return path


@pytest.mark.parametrize(
    "case, expect",
    [
        ("shape", "other.mrc"),
        ("voxel", "voxel size"),
        ("mask_shape", "mask_small.mrc"),
        ("mask_empty", "mask_empty.mrc"),
        ("missing", "nothere.mrc"),
        ("cone", "--cone-angle"),
    ],
)
def test_bad_input_one_line_no_output(halves, tmp_path, case, expect):
    out, png = tmp_path / "bad" / "fsc.json", tmp_path / "bad" / "fsc.png"
    h1, h2, extra = halves["h1"], halves["h2"], []
    if case == "shape":
        h2 = _bad(tmp_path, "other.mrc", shape=(24, 32, 30))
    elif case == "voxel":
        h2 = _bad(tmp_path, "other.mrc", voxel=10.0)
    elif case == "mask_shape":
        extra = ["--mask", _bad(tmp_path, "mask_small.mrc", shape=(24, 32, 31), data=np.ones((24, 32, 31)))]
    elif case == "mask_empty":
        extra = ["--mask", _bad(tmp_path, "mask_empty.mrc", data=np.zeros(SHAPE))]
    elif case == "missing":
        h2 = tmp_path / "nothere.mrc"
    elif case == "cone":
        extra = ["--cone-angle", "90"]
    res = run([h1, h2, "-o", out, "--plot", png, *extra])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert expect in lines[0]
    assert "Traceback" not in res.output
    assert not out.exists() and not png.exists()
    assert not (out.parent.exists() and any(out.parent.iterdir()))


def test_voxel_size_mismatch_can_be_overridden(halves, tmp_path):
    other = _bad(tmp_path, "other.mrc", voxel=10.0)
    out = tmp_path / "o.json"
    res = run([halves["h1"], other, "-o", out, "--pixel-size", "8"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["pixel_size_A"] == 8.0
