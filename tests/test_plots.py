"""Figures through matplotlib: the SVG keeps text and one path per curve, PNGs decode to real
pictures, the FSC plot shows its thresholds, and a read-only home folder gets a private config.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isonet_steps.core.fsc import fourier_shell_correlation
from isonet_steps.figures.fsc import fsc_figure
from isonet_steps.figures.plots import figure_png, figure_svg, gray_png, line_axes, new_figure, prepare_matplotlib
from isonet_steps.io.mrc import write_volume
from isonet_steps.report.figures import (
    epoch_positions,
    kzkx_log_power,
    loss_plot,
    noise_plot,
    power_figure,
    power_window,
)


def _png_pixels(data: bytes) -> np.ndarray:
    """RGB uint8 pixels of PNG bytes (decoded by Pillow, not by the code under test)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _curves(svg: str) -> dict[int, str]:
    """Series index -> the SVG of its curve group (``<g id="...series-i">``)."""
    groups = re.findall(r'<g id="[^"]*series-(\d+)"[^>]*>(.*?)</g>', svg, re.S)
    return {int(i): body for i, body in groups}


def test_line_plot_svg_keeps_text_and_draws_one_path_per_curve():
    x = np.linspace(0, 1, 21)
    gap = np.sin(3 * x)
    gap[10] = np.nan  # NaN breaks a line into two pieces
    fig = new_figure(500, 320)
    line_axes(fig, {"first": (x, x ** 2), "second": (x, 1 - x), "with gap": (x, gap)},
              title="Two curves", xlabel="spatial frequency (Å⁻¹)", ylabel="FSC")
    svg = figure_svg(fig, label="a test plot")
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    assert 'aria-label="a test plot"' in svg
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    for wanted in ("spatial frequency (Å⁻¹)", "FSC", "Two curves", "first", "second", "with gap"):
        assert wanted in texts, f"{wanted!r} is not SVG text: {texts}"
    curves = _curves(svg)
    assert sorted(curves) == [0, 1, 2]
    for i, body in curves.items():
        paths = re.findall(r'<path d="([^"]*)"', body)
        assert len(paths) == 1, f"series {i}: {len(paths)} paths"
    moves = [len(re.findall(r"M ", re.search(r'd="([^"]*)"', curves[i]).group(1))) for i in range(3)]
    lines = [len(re.findall(r"L ", re.search(r'd="([^"]*)"', curves[i]).group(1))) for i in range(3)]
    assert moves == [1, 1, 2] and lines == [20, 20, 18]  # 21 points; the gap removes two segments
    # no XML prolog, metadata or network reference; ids unique across two figures on one page
    assert "<?xml" not in svg and "http" not in svg and "<metadata" not in svg
    other = figure_svg(fig)
    ids = re.findall(r'\bid="([^"]+)"', svg + other)
    assert len(ids) == len(set(ids))
    for ref in re.findall(r"url\(#([^)]+)\)", svg):
        assert f'id="{ref}"' in svg, f"dangling reference #{ref}"


def test_fsc_png_has_its_size_curves_and_threshold_lines():
    rng = np.random.default_rng(4)
    signal = rng.standard_normal((32, 32, 32)).astype(np.float32)
    h1 = signal + 0.8 * rng.standard_normal(signal.shape).astype(np.float32)
    h2 = signal + 0.8 * rng.standard_normal(signal.shape).astype(np.float32)
    fig = fsc_figure(fourier_shell_correlation(h1, h2, 10.0))
    png = figure_png(fig)
    image = _png_pixels(png)
    assert image.shape == (400, 640, 3)
    assert image.std() > 20, "blank picture"
    assert (image == 0).all(axis=2).sum() > 100  # the black global curve
    ax = fig.axes[0]
    left, right = (int(v) for v in ax.transData.transform([(0.0, 0.0), (ax.get_xlim()[1], 0.0)])[:, 0])

    def grey_share(y: float) -> float:
        """Share of the columns across the axes with a dark neutral grey pixel within a pixel of ``y``."""
        row = image.shape[0] - ax.transData.transform((0.0, y))[1]
        band = image[int(round(row)) - 1:int(round(row)) + 2, left + 2:right - 2].astype(int)
        grey = (band.max(axis=2) - band.min(axis=2) < 10) & (band.max(axis=2) < 200) & (band.min(axis=2) > 60)
        return float(grey.any(axis=0).mean())

    # dashed lines at both thresholds (about 60 % ink), none between them or above 0.5
    assert grey_share(0.5) > 0.4 and grey_share(0.143) > 0.4
    assert grey_share(0.3) < 0.1 and grey_share(0.7) < 0.1
    svg = figure_svg(fsc_figure(fourier_shell_correlation(h1, h2, 10.0)))
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "spatial frequency (Å⁻¹)" in texts and "resolution (Å)" in texts
    assert "0.5" in texts and "0.143" in texts  # the thresholds are labelled
    assert len(_curves(svg)) == 7  # global, three axes, three planes


def test_report_plots_svg_and_power_maps():
    records = [{"iteration": it, "loss": [0.3 / it, 0.25 / it], "val_loss": [0.35 / it, None]} for it in (1, 2, 3)]
    loss = figure_svg(loss_plot({"half 1": records, "half 2": records}))
    assert len(_curves(loss)) == 4 and "loss (mean absolute error)" in loss
    assert loss_plot({"": []}) is None and noise_plot({}) is None
    # an iteration stopped early keeps the epoch spacing of the full ones: it ends before its interval does
    mixed = [{"iteration": 1, "loss": [0.3, 0.2, 0.1, 0.1]}, {"iteration": 2, "loss": [0.2, 0.2]}]
    xs, ys = epoch_positions(mixed, "loss")
    assert xs == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5] and ys == [0.3, 0.2, 0.1, 0.1, 0.2, 0.2]
    assert len(_curves(figure_svg(loss_plot({"": mixed})))) == 1
    noise = figure_svg(noise_plot({"planned": [(1, 0.0), (2, 0.05)], "used": [(1, 0.0)]}))
    assert len(_curves(noise)) == 2 and "noise level" in noise

    rng = np.random.default_rng(2)
    maps = [kzkx_log_power(rng.standard_normal((24, 8, 40)).astype(np.float32)) for _ in range(2)]
    fig = power_figure(maps, ["raw", "corrected"], power_window(maps), voxel_size=10.0, tilt_range=(-60, 60))
    svg = figure_svg(fig)
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert {"raw", "corrected", "kx (Å⁻¹)", "kz (Å⁻¹)", "log₁₀ power"} <= set(texts)
    assert len(re.findall(r"<image ", svg)) >= 2  # the maps stay pixels inside the SVG
    rgb = _png_pixels(figure_png(fig)).astype(int)
    colourful = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
    assert colourful.mean() > 0.2, "the spectra are not drawn with a colour map"
    for ax in fig.axes[:2]:  # square panels: kz and kx share one scale
        box = ax.get_window_extent()
        assert box.width == pytest.approx(box.height, rel=0.02)


def test_gray_png_is_the_same_pixels():
    image = np.arange(35 * 50, dtype=np.uint32).reshape(35, 50).astype(np.uint8)
    decoded = Image.open(io.BytesIO(gray_png(image)))
    assert decoded.mode == "L" and decoded.size == (50, 35)
    np.testing.assert_array_equal(np.asarray(decoded), image)
    with pytest.raises(ValueError, match="uint8"):
        gray_png(image.astype(np.float32))


def _clear_config_env(monkeypatch, home: Path) -> None:
    monkeypatch.setenv("HOME", str(home))
    for name in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


def test_unwritable_home_gets_a_temporary_config_folder(tmp_path, monkeypatch):
    # a home below a regular file can never be created or written, even by root
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _clear_config_env(monkeypatch, blocker / "home")
    prepare_matplotlib()
    folder = Path(os.environ["MPLCONFIGDIR"])
    assert folder.is_dir() and os.access(folder, os.W_OK) and not folder.is_relative_to(blocker)


def test_writable_home_or_set_folder_is_left_alone(tmp_path, monkeypatch):
    _clear_config_env(monkeypatch, tmp_path / "home")
    prepare_matplotlib()
    assert "MPLCONFIGDIR" not in os.environ
    assert (tmp_path / "home" / ".config" / "matplotlib").is_dir()
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "chosen"))
    monkeypatch.setenv("HOME", str(tmp_path / "file-that-is-not" / "x"))
    prepare_matplotlib()
    assert os.environ["MPLCONFIGDIR"] == str(tmp_path / "chosen")


def test_fsc_plot_with_a_read_only_home_prints_no_matplotlib_warning(tmp_path):
    """The whole command in a fresh process, as a container task runs it: no warning, a PNG."""
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((16, 16, 16)).astype(np.float32)
    for name in ("h1", "h2"):
        write_volume(tmp_path / f"{name}.mrc", signal + 0.5 * rng.standard_normal(signal.shape), 10.0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env["HOME"] = str(blocker / "home")
    plot = tmp_path / "tomo_fsc.png"
    run = subprocess.run([sys.executable, "-m", "isonet_steps", "fsc",
                          str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"),
                          "-o", str(tmp_path / "fsc.json"), "--plot", str(plot)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "matplotlib" not in run.stderr.lower(), run.stderr
    assert "WARNING" not in run.stderr, run.stderr
    assert _png_pixels(plot.read_bytes()).shape == (400, 640, 3)


def test_commands_start_without_matplotlib():
    code = ("import sys, isonet_steps.cli.main, isonet_steps.cli.fsc, isonet_steps.core.fsc, "
            "isonet_steps.report.build, "
            "isonet_steps.report.figures, isonet_steps.figures.plots, isonet_steps.figures.fsc, "
            "isonet_steps.steps.fsc, isonet_steps.steps.gold_standard; "
            "print(sorted(m for m in ('matplotlib', 'PIL') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
