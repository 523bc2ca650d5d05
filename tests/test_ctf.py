"""CTF deconvolution: the filter's physics, whole mode against IsoNet's recipe, chunked = whole."""

from __future__ import annotations

import math

import mrcfile
import numpy as np
import pytest

from _data_steps import read_star, write_star, write_tomo
from conftest import check_ok, invoke
from isonet_steps.core import ctf, deconv_chunked, deconv_whole
from isonet_steps.io.errors import InputError
from isonet_steps.io.mrc import new_memmap, open_memmap, release_pages

PARAMS = ctf.CtfParams(pixel_size=10.0, defocus=30000.0)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_electron_wavelength_textbook_values():
    assert ctf.electron_wavelength(300) == pytest.approx(1.9687e-12, rel=1e-3)
    assert ctf.electron_wavelength(200) == pytest.approx(2.5079e-12, rel=1e-3)


@pytest.mark.parametrize("pixel, defocus_um", [(10.0, 3.0), (5.0, 2.0), (15.0, 5.0)])
def test_filter_changes_sign_at_the_first_ctf_zero(pixel, defocus_um):
    """W has the sign of the CTF; its first sign change is where the phase shift (incl. Cs)
    reaches π minus the amplitude-contrast phase (solved here as a quadratic in k²).
    """
    params = ctf.CtfParams(pixel_size=pixel, defocus=defocus_um * 1e4)
    w = ctf.wiener_profile(params)
    lam, cs, dz = ctf.electron_wavelength(300), 2.7e-3, defocus_um * 1e-6
    target = math.pi - math.asin(ctf.AMPLITUDE_CONTRAST)
    a, b = math.pi / 2 * lam**3 * cs, math.pi * lam * dz
    k2 = (b - math.sqrt(b * b - 4 * a * target)) / (2 * a)
    expected_index = math.sqrt(k2) * 2 * 2048 * pixel * 1e-10  # profile sample i is at k = i / (2·2048·pixel)
    first = int(np.flatnonzero(np.sign(w[1:]) != np.sign(w[:-1]))[0]) + 1
    assert abs(first - expected_index) <= 1.0
    assert w[0] == pytest.approx(0.07 / (0.07**2 + 1e6), rel=1e-3)  # DC: high-pass leaves SNR ~1e-6


def test_stronger_deconvolution_boosts_low_frequencies():
    weak = ctf.wiener_profile(ctf.CtfParams(pixel_size=10.0, defocus=30000.0, deconvstrength=0.0))
    strong = ctf.wiener_profile(ctf.CtfParams(pixel_size=10.0, defocus=30000.0, deconvstrength=2.0))
    band = slice(41, 400)  # above the high-pass, below the first zero
    assert (strong[band] > weak[band]).all()


def _isonet_recipe(vol: np.ndarray, params: ctf.CtfParams) -> np.ndarray:
    """The reference §3 recipe, literally: centred grids, full complex FFT, real part, mean/std."""
    w = ctf.wiener_profile(params)
    axes = [np.arange(-(n // 2), -(n // 2) + n) / max(1, n // 2) for n in vol.shape]
    u0, u1, u2 = np.meshgrid(*axes, indexing="ij")
    r = np.fft.ifftshift(np.minimum(np.sqrt(u0**2 + u1**2 + u2**2), 1.0))
    ramp = np.interp(r, np.linspace(0, 1, w.size), w)
    out = np.real(np.fft.ifftn(np.fft.fftn(vol) * ramp))
    return out / out.std() * vol.std() + vol.mean()


def test_whole_mode_without_padding_is_isonets_recipe():
    vol = np.random.default_rng(3).standard_normal((17, 24, 31)).astype(np.float32)  # odd, even, non-cubic
    ours = deconv_whole.deconv_volume(vol, PARAMS, workers=1, edge_pad=0)
    ref = _isonet_recipe(vol.astype(np.float64), PARAMS)
    assert ours.dtype == np.float32 and ours.shape == vol.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4 * float(ref.std()))


def test_whole_mode_keeps_mean_and_std_and_changes_the_volume(phantom_small):
    vol = phantom_small.phantom.tomogram + 5.0
    out = deconv_whole.deconv_volume(vol, PARAMS, workers=1)
    assert float(out.mean()) == pytest.approx(float(vol.mean()), abs=1e-3)
    assert float(out.std()) == pytest.approx(float(vol.std()), rel=1e-3)
    assert _corr(out, vol) < 0.9  # it really filtered


def test_mirror_padding_removes_wrap_around_at_the_faces():
    """A ramp along Z: the wrap-around FFT sees a jump between the top and bottom faces."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(-3, 3, 32, dtype=np.float32)[:, None, None]
    vol = (ramp + 0.1 * rng.standard_normal((32, 32, 32))).astype(np.float32)
    wrapped = deconv_whole.deconv_volume(vol, PARAMS, workers=1, edge_pad=0)
    padded = deconv_whole.deconv_volume(vol, PARAMS, workers=1)
    profile_w, profile_p = wrapped.mean(axis=(1, 2)), padded.mean(axis=(1, 2))
    # the faces' means stay ordered like the ramp with padding; wrap-around pulls them together
    assert profile_p[-1] - profile_p[0] > 1.5 * (profile_w[-1] - profile_w[0])


@pytest.mark.parametrize("chunk, overlap", [(32, 0.5), (48, 0.25)])
def test_chunked_equals_whole(phantom_small, chunk, overlap):
    vol = phantom_small.phantom.tomogram
    whole = deconv_whole.deconv_volume(vol, PARAMS, workers=1)
    out = np.zeros_like(vol)
    deconv_chunked.deconv_chunked(vol, out, PARAMS, chunk_size=chunk, overlap_rate=overlap, workers=1)
    assert _corr(out, whole) > 0.999
    assert float(out.mean()) == pytest.approx(float(vol.mean()), abs=1e-3)
    assert float(out.std()) == pytest.approx(float(vol.std()), rel=1e-3)


def test_chunked_has_no_per_chunk_seams(phantom_small):
    """Each chunk's core has the same level and scale as whole mode (IsoNet renormalised each chunk)."""
    vol = phantom_small.phantom.tomogram
    whole = deconv_whole.deconv_volume(vol, PARAMS, workers=1)
    out = np.zeros_like(vol)
    deconv_chunked.deconv_chunked(vol, out, PARAMS, chunk_size=32, overlap_rate=0.5, workers=1)
    scale = float(whole.std())
    for z in range(0, 48, 32):
        for y in range(0, 96, 32):
            for x in range(0, 96, 32):
                a, b = out[z:z + 32, y:y + 32, x:x + 32], whole[z:z + 32, y:y + 32, x:x + 32]
                assert abs(float(a.mean() - b.mean())) < 0.02 * scale
                assert float(a.std()) == pytest.approx(float(b.std()), rel=0.02)
    # and across a chunk border the change between neighbouring planes is like elsewhere
    jump = np.abs(out[32] - out[31]).mean()
    usual = np.abs(np.diff(out[20:30], axis=0)).mean()
    assert jump < 1.2 * usual


def test_chunked_through_memory_maps(tmp_path, phantom_small):
    vol = phantom_small.phantom.tomogram
    src_path = write_tomo(tmp_path / "in.mrc", vol)
    in_memory = np.zeros_like(vol)
    deconv_chunked.deconv_chunked(vol, in_memory, PARAMS, chunk_size=32, overlap_rate=0.25, workers=1)
    calls = []
    with open_memmap(src_path) as src, new_memmap(tmp_path / "out.mrc", vol.shape, 10.0) as dst:
        def release():
            calls.append(1)
            release_pages(src.data)
            release_pages(dst)
        deconv_chunked.deconv_chunked(src.data, dst, PARAMS, chunk_size=32, overlap_rate=0.25, workers=1,
                                      release=release)
    on_disk = mrcfile.read(tmp_path / "out.mrc")
    np.testing.assert_allclose(on_disk, in_memory, atol=1e-5 * float(vol.std()))
    assert len(calls) > 18  # every chunk and slab released its pages


def test_chunk_layout_and_limits():
    crop, pad, counts = deconv_chunked.chunk_layout((600, 2048, 2048), 256, 0.25)
    assert crop >= 320 and pad == (crop - 256) // 2 and counts == [3, 8, 8]
    with pytest.raises(InputError, match="--chunk-size"):
        deconv_chunked.chunk_layout((64, 64, 64), 8, 0.25)
    with pytest.raises(InputError, match="--overlap-rate"):
        deconv_chunked.chunk_layout((64, 64, 64), 32, 1.5)


def test_bad_values_fail_with_the_option_name():
    vol = np.random.default_rng(0).standard_normal((16, 16, 16)).astype(np.float32)
    with pytest.raises(InputError, match="--voltage"):
        deconv_whole.deconv_volume(vol, ctf.CtfParams(pixel_size=10, defocus=1e4, voltage=0))
    with pytest.raises(InputError, match="--highpassnyquist"):
        ctf.wiener_profile(ctf.CtfParams(pixel_size=10, defocus=1e4, highpassnyquist=2))
    vol[3, 4, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        deconv_chunked.deconv_chunked(vol, np.zeros_like(vol), PARAMS, chunk_size=32)
    with pytest.raises(InputError, match="constant"):
        deconv_chunked.deconv_chunked(np.ones((16, 16, 16), np.float32), np.zeros((16, 16, 16), np.float32), PARAMS,
                                      chunk_size=32)


def test_cli_deconv_rows_names_and_star(tmp_path, phantom_small):
    """Row 1 deconvolved (STAR strength used), row 2 (defocus 0) skipped; dotted names kept."""
    vol = phantom_small.phantom.tomogram
    t1 = write_tomo(tmp_path / "tomos" / "TS_01.rec.mrc", vol, 12.5)
    t2 = write_tomo(tmp_path / "tomos" / "TS_02.mrc", vol, 12.5)
    star = write_star(tmp_path / "tomograms.star", [
        {"rlnMicrographName": t1, "rlnPixelSize": 12.5, "rlnDeconvStrength": 0.5},
        {"rlnMicrographName": t2, "rlnPixelSize": 12.5, "rlnDefocus": 0.0},
    ])
    result = check_ok(invoke(["deconv", star, "--deconv-folder", tmp_path / "dec", "--snrfalloff", "0.8",
                              "--ncpu", "1"], cwd=tmp_path))
    assert "skipping" in result.stderr and "TS_02.mrc" in result.stderr
    out = tmp_path / "dec" / "TS_01.rec.mrc"
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == ["TS_01.rec.mrc"]
    with mrcfile.open(out) as m:
        assert m.voxel_size.x == pytest.approx(12.5) and m.data.shape == vol.shape
        expected = deconv_whole.deconv_volume(vol, ctf.CtfParams(pixel_size=12.5, defocus=30000.0, snrfalloff=0.8,
                                                        deconvstrength=0.5), workers=1)
        np.testing.assert_allclose(m.data, expected, atol=1e-4)
    df = read_star(star)  # rewritten in place
    assert df["rlnDeconvTomoName"].tolist() == [str(out), "None"]
    assert df["rlnSnrFalloff"].tolist()[0] == pytest.approx(0.8)
    assert df["rlnDeconvStrength"].tolist()[0] == pytest.approx(0.5)


def test_amplitude_contrast_moves_the_filter_at_low_frequency():
    base = ctf.wiener_profile(ctf.CtfParams(pixel_size=10.0, defocus=30000.0))
    more = ctf.wiener_profile(ctf.CtfParams(pixel_size=10.0, defocus=30000.0, amplitude_contrast=0.2))
    assert more[0] == pytest.approx(0.2 / (0.2**2 + 1e6), rel=1e-3) and base[0] < more[0]
    with pytest.raises(InputError, match="amplitude contrast"):
        ctf.CtfParams(pixel_size=10.0, defocus=1.0, amplitude_contrast=1.5).check()


def test_cli_deconv_takes_the_microscope_from_the_star_row(tmp_path, phantom_small):
    """A RELION 5 row carries its voltage, Cs and amplitude contrast: they win over the options."""
    vol = phantom_small.phantom.tomogram
    t1 = write_tomo(tmp_path / "tomos" / "TS_01.mrc", vol, 12.5)
    star = write_star(tmp_path / "tomograms.star", [
        {"rlnMicrographName": t1, "rlnPixelSize": 12.5, "rlnVoltage": 200.0, "rlnSphericalAberration": 0.01,
         "rlnAmplitudeContrast": 0.1}])
    result = check_ok(invoke(["deconv", star, "--deconv-folder", tmp_path / "dec", "--ncpu", "1"], cwd=tmp_path))
    assert "rlnVoltage 200 from the STAR" in result.stderr
    with mrcfile.open(tmp_path / "dec" / "TS_01.mrc") as m:
        expected = deconv_whole.deconv_volume(vol, ctf.CtfParams(pixel_size=12.5, defocus=30000.0, voltage=200.0,
                                                                 cs=0.01, amplitude_contrast=0.1), workers=1)
        np.testing.assert_allclose(m.data, expected, atol=1e-4)
        default = deconv_whole.deconv_volume(vol, ctf.CtfParams(pixel_size=12.5, defocus=30000.0), workers=1)
        assert np.abs(m.data - default).max() > 1e-2


def test_cli_chunked_matches_whole_and_underscore_options(tmp_path, phantom_small):
    vol = phantom_small.phantom.tomogram
    t1 = write_tomo(tmp_path / "t.mrc", vol)
    star = write_star(tmp_path / "tomograms.star", [{"rlnMicrographName": t1}])
    check_ok(invoke(["deconv", star, "--deconv_folder", "whole", "--output_star", "w.star", "--ncpu", "1"],
                    cwd=tmp_path))
    check_ok(invoke(["deconv", star, "--deconv_folder", "chunked", "--chunk_size", "32", "--overlap_rate", "0.5",
                     "--output_star", "c.star", "--tomo_idx", "1", "--ncpu", "1"], cwd=tmp_path))
    whole, chunked = mrcfile.read(tmp_path / "whole" / "t.mrc"), mrcfile.read(tmp_path / "chunked" / "t.mrc")
    assert _corr(whole, chunked) > 0.999
    assert read_star(tmp_path / "c.star")["rlnDeconvTomoName"].tolist() == ["chunked/t.mrc"]


def test_a_chunk_as_large_as_the_tomogram_is_the_tomogram_itself():
    """--chunk-size >= every edge: one chunk of the tomogram's own size, not a padded chunk³ cube
    (a 1000-voxel chunk of 64×160×160 used to allocate 1250³ voxels and get killed).
    """
    import tracemalloc

    vol = np.random.default_rng(3).standard_normal((16, 40, 48)).astype(np.float32)
    whole = deconv_whole.deconv_volume(vol, PARAMS, workers=1)
    out = np.zeros_like(vol)
    tracemalloc.start()
    try:
        deconv_chunked.deconv_chunked(vol, out, PARAMS, chunk_size=250, overlap_rate=0.25, workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * vol.nbytes  # a 320³ cube alone would be 1000 times the volume
    np.testing.assert_allclose(out, whole, atol=1e-5 * float(vol.std()))


_KILLED_WRITER = """
import os, signal, sys
from isonet_steps.io.mrc import new_memmap
with new_memmap(sys.argv[1], (16, 40, 48), 10.0) as dst:
    dst[:8] = 1.0
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or kill -9 would
"""


def test_a_killed_deconv_leaves_nothing_behind_after_the_next_run(tmp_path):
    import subprocess
    import sys

    vol = np.random.default_rng(4).standard_normal((16, 40, 48)).astype(np.float32)
    star = write_star(tmp_path / "tomograms.star", [{"rlnMicrographName": write_tomo(tmp_path / "t.mrc", vol)}])
    out = tmp_path / "dec" / "t.mrc"
    out.parent.mkdir()
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(out)], capture_output=True, timeout=120)
    assert killed.returncode == -9
    left = [p.name for p in out.parent.iterdir()]
    assert len(left) == 1 and left[0].startswith(".t.mrc.") and left[0].endswith(".part")  # what the kill left
    check_ok(invoke(["deconv", star, "--deconv-folder", out.parent, "--chunk-size", "32", "--ncpu", "1"], cwd=tmp_path))
    assert [p.name for p in out.parent.iterdir()] == ["t.mrc"]
