"""isonet report: a self-contained HTML page from a run folder, and that Chromium renders it.

The run folder is synthetic but laid out exactly as ``isonet run``/``isonet demo`` write it: a
small phantom as the raw tomogram, its ground truth plus a little noise as the "corrected" one,
two noisy halves with their FSC JSON (from isonet_steps.core.fsc), refine states, step records.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from isonet_steps.cli.report import command as report_command
from isonet_steps.core.fsc import fourier_shell_correlation
from isonet_steps.core.phantom import make_phantom
from isonet_steps.io.mrc import write_volume
from isonet_steps.io.plan import TomogramPlan, write_plan
from isonet_steps.io.star import read_star, write_star
from isonet_steps.report.build import SECTIONS

SHAPE = (32, 80, 96)
PIXEL = 10.0
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def _refine_state(iterations: int, epochs: int, offset: float) -> dict:
    schedule = [0.0] + [0.0 if i < 3 else 0.05 for i in range(1, iterations + 1)]
    records = []
    for it in range(1, iterations + 1):
        base = 0.30 / it + offset + (0.02 if schedule[it] else 0.0)
        records.append({"iteration": it, "noise_level": schedule[it], "batch_size": 4, "steps_per_epoch": 5,
                        "loss": [base + 0.03 * (epochs - e) / epochs for e in range(epochs)],
                        "val_loss": [base + 0.04 + 0.02 * (epochs - e) / epochs for e in range(epochs)],
                        "seconds": 12.5 + it})
    return {"completed": iterations, "iterations": records, "noise_schedule": schedule, "target_iterations": iterations,
            "batch_size": 4, "steps_per_epoch": 5, "settings": {"iterations": iterations, "epochs": epochs,
                                                                 "filter_base": 8, "learning_rate": 0.0004},
            "data": {"n": 24}, "version": 1}


def make_run(root: Path, *, halves: bool = True, truth: bool = True) -> Path:
    """A finished run folder like 'isonet demo' writes (halves: gold-standard step and FSC JSON)."""
    rng = np.random.default_rng(3)
    ph = make_phantom(SHAPE, seed=2, pixel_size=PIXEL)
    data = root / "data"
    write_volume(data / "tomo.mrc", ph.tomogram, PIXEL)
    if truth:
        write_volume(data / "ground_truth.mrc", ph.ground_truth, PIXEL)
        write_volume(data / "labels.mrc", ph.labels, PIXEL, dtype=np.int8)
    out = root / "run"
    gt = (ph.ground_truth - ph.ground_truth.mean()) / ph.ground_truth.std()
    corrected_dir = out / "corrected"
    h1 = gt + 0.6 * rng.standard_normal(SHAPE).astype(np.float32)
    h2 = gt + 0.6 * rng.standard_normal(SHAPE).astype(np.float32)
    write_volume(corrected_dir / "tomo_corrected.mrc", (h1 + h2) / 2, PIXEL)
    write_volume(out / "mask" / "tomo_mask.mrc", np.ones(SHAPE, np.int8), PIXEL, dtype=np.int8)
    base = {"rlnIndex": [1], "rlnMicrographName": [str(data / "tomo.mrc")], "rlnPixelSize": [PIXEL],
            "rlnDefocus": [0.0], "rlnNumberSubtomo": [24], "rlnTiltMin": [-60.0], "rlnTiltMax": [60.0]}
    write_star(pd.DataFrame(base), out / "tomograms.star")
    masked = dict(base, rlnMaskName=["mask/tomo_mask.mrc"])
    write_star(pd.DataFrame(masked), out / "tomograms_mask.star")
    corrected = dict(masked, rlnCorrectedTomoName=["corrected/tomo_corrected.mrc"])
    # the records as isonet run writes them: a tomogram's steps as <step>/<tomogram>, the gathers as merge_*
    steps = ["prepare", "make_mask/tomo", "merge_mask", "extract/tomo", "merge_subtomo", "refine"]
    if halves:
        write_volume(corrected_dir / "tomo_half1_corrected.mrc", h1, PIXEL)
        write_volume(corrected_dir / "tomo_half2_corrected.mrc", h2, PIXEL)
        result = fourier_shell_correlation(h1, h2, PIXEL)
        _json(corrected_dir / "tomo_fsc.json", {"half1": "h1", "half2": "h2", "mask": None, **result.to_dict()})
        corrected.update(rlnCorrectedTomoHalf1=["corrected/tomo_half1_corrected.mrc"],
                         rlnCorrectedTomoHalf2=["corrected/tomo_half2_corrected.mrc"],
                         rlnGoldStandardFsc=[str(corrected_dir / "tomo_fsc.json")])
        for h in (1, 2):
            _json(out / "refine" / f"half{h}" / "refine_state.json", _refine_state(4, 3, 0.01 * h))
        steps.append("gold_standard/tomo")
    else:
        _json(out / "refine" / "refine_state.json", _refine_state(4, 3, 0.0))
        steps.append("predict/tomo")
    write_star(pd.DataFrame(corrected), out / "tomograms_corrected.star")
    steps.append("merge_corrected")
    write_star(pd.DataFrame({"rlnSubtomoIndex": list(range(1, 25)),
                             "rlnImageName": [f"subtomo/s{i}.mrc" for i in range(24)], "rlnCubeSize": 32,
                             "rlnCropSize": 48, "rlnRandomSubset": [1 + i % 2 for i in range(24)]}),
               out / "subtomo.star")
    truth_path = str(data / "ground_truth.mrc") if truth else None
    _json(out / ".isonet" / "run.json", {"input": str(data), "ground_truth": truth_path,
                                         "params": {"pixel_size": 10.0, "iterations": 4, "epochs": 3, "halves": halves,
                                                    "noise_level": [0.05], "noise_start_iter": [3], "gpus": "cpu"}})
    for k, name in enumerate(steps):
        _json(out / ".isonet" / "steps" / f"{name}.json", {"step": name, "key": "k", "settings": {}, "outputs": {},
                                                          "seconds": 1.5 + 10 * k, "finished": "2025-01-01 10:00:00"})
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def demo_html(demo_run, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("html") / "report.html"
    result = CliRunner().invoke(report_command, [str(demo_run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, out.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ PNG decoding


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 array (H, W, channels), decoded by Pillow."""
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    image = np.asarray(Image.open(io.BytesIO(data)))
    return image[:, :, None] if image.ndim == 2 else image


def _unbalanced_tags(text: str) -> list:
    """Closing tags that do not match the open element (and elements left open)."""
    from html.parser import HTMLParser

    void = {"img", "meta", "br", "hr", "input", "link", "source", "wbr"}

    class Checker(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.errors = [], []

        def handle_starttag(self, tag, attrs):
            if tag not in void:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            if self.stack and self.stack[-1] == tag:
                self.stack.pop()
            else:
                self.errors.append((tag, self.getpos()))

    checker = Checker()
    checker.feed(text)
    return checker.errors + checker.stack


def _data_uris(text: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)


def _svgs(text: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", text, re.S)


# ------------------------------------------------------------------------------------ tests


def test_report_has_every_section_slices_as_png_and_plots_as_svg(demo_html):
    path, text = demo_html
    for anchor, _title in SECTIONS:
        assert f'<section id="{anchor}">' in text, f"section {anchor} missing"
        assert f'href="#{anchor}"' in text
    sources = _data_uris(text)
    # 3 planes x (raw, corrected, truth); where the halves disagree: 3 sections x (corrected, agreement map)
    assert len(sources) == 9 + 6, len(sources)
    assert text.count("<img") == len(sources)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        image = decode_png(png)
        assert image.shape[0] >= 32 and image.shape[1] >= 32
        assert image.std() > 1.0, "blank picture"
    # the power maps of one tomogram, loss, noise, FSC, the agreement maps' colour bar: inline SVG whose text is text
    svgs = _svgs(text)
    assert len(svgs) == 5, len(svgs)
    for svg, label in zip(svgs, ("kx (Å⁻¹)", "loss (mean absolute error)", "noise level", "spatial frequency (Å⁻¹)")):
        assert f">{label}</text>" in svg
    assert len(re.findall(r"<image ", svgs[0])) >= 3  # raw, corrected, truth spectra
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "an id is used twice on the page"
    assert not re.search(r"https?://", text), "the page must not reference the network"
    assert _unbalanced_tags(text) == []
    assert "<link" not in text and "@import" not in text
    assert not re.search(r"url\((?!#)", text), "only references inside the page"
    assert "not run" not in text.lower(), "every section of a finished demo run has content"


def test_report_contents_match_the_run(demo_run, demo_html):
    _, text = demo_html
    fsc = json.loads((demo_run / "corrected" / "tomo_fsc.json").read_text())
    for d in ("global", "x", "z", "xy"):
        v = fsc["resolution_A"]["0.143"][d]
        assert f"{v:.1f}" in text  # the resolution table holds the JSON's numbers
    assert "both predictions saw the same input tomogram".lower() in text.lower()
    assert "Fourier correlation with the truth, missing wedge" in text
    assert "half 1" in text and "half 2" in text
    for label in ("raw · XY at z = 16", "corrected · XZ at y = 40", "ground truth · YZ at x = 48"):
        assert label in text
    assert "1st–99th percentile" in text
    # ground-truth figures: the stand-in "corrected" is the truth plus noise, so it must beat the raw tomogram
    rows = re.findall(r"<tr><td>Fourier correlation with the truth, missing wedge</td>"
                      r"<td class=num>([-\d.]+)</td><td class=num>([-\d.]+)</td>", text)
    assert rows and float(rows[0][1]) > float(rows[0][0]) + 0.2
    # wedge power: the raw tomogram lacks it, the "corrected" one has it
    ratios = [float(v) for v in re.findall(r"wedge/measured power ([\d.]+)", text)]
    assert len(ratios) == 3 and ratios[0] < 0.5 * ratios[1]
    assert "1 min 00 s" not in text  # step times are the records' (1.5, 11.5, ... s)
    assert "41.5 s" in text


def test_report_of_partial_and_bare_folders(tmp_path):
    run = make_run(tmp_path, halves=False, truth=False)
    # a run stopped during refine: no predict record, no corrected STAR; with a deconvolved tomogram
    (run / ".isonet" / "steps" / "predict" / "tomo.json").unlink()
    (run / ".isonet" / "steps" / "merge_corrected.json").unlink()
    (run / "tomograms_corrected.star").unlink()
    table = pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": [str(tmp_path / "data" / "tomo.mrc")],
                          "rlnPixelSize": [PIXEL], "rlnDeconvTomoName": ["deconv/tomo_deconv.mrc"]})
    write_volume(run / "deconv" / "tomo_deconv.mrc", np.random.default_rng(0).standard_normal(SHAPE), PIXEL)
    write_star(table, run / "tomograms_mask.star")
    out = tmp_path / "partial.html"
    result = CliRunner().invoke(report_command, [str(run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.count("<section id=") >= len(SECTIONS)
    assert "Not run: the gold-standard step did not run" in text
    assert "Not run: no corrected tomogram yet" in text
    assert "Not run: no ground truth" in text
    assert "Not run (or not finished): predict" in text
    assert "deconvolved · XZ at y = 40" in text
    assert len(_data_uris(text)) == 6  # raw and deconvolved slices
    assert len(_svgs(text)) == 1 + 2  # their power maps, loss + noise
    # a bare refine result folder
    bare = tmp_path / "bare"
    shutil.copytree(run / "refine", bare)
    result = CliRunner().invoke(report_command, [str(bare)])
    assert result.exit_code == 0, result.output
    text = (bare / "report.html").read_text()
    assert "4 of 4 iterations" in text and "Not run: no tomogram STAR" in text
    assert len(_data_uris(text)) == 0 and len(_svgs(text)) == 2


def _section(text: str, anchor: str) -> str:
    """One section of the page, its figures' element ids (numbered in page order) made comparable."""
    return re.sub(r"\bf\d+-", "f-", re.search(rf'<section id="{anchor}">.*?</section>', text, re.S).group(0))


def test_timings_list_each_tomogram_s_steps_in_run_order(demo_html):
    _, text = demo_html
    timings = _section(text, "timings")
    names = re.findall(r"<tr><td>([a-z_/-]+)</td>", timings)
    assert names == ["prepare", "make-mask/tomo", "merge-mask", "extract/tomo", "merge-subtomo", "refine",
                     "gold-standard/tomo", "merge-corrected", "total"]
    assert "Not run (or not finished)" not in timings
    assert re.search(r"steps done</div><div class=\"v ok\">5 of 5<", text)


def test_steps_not_run_for_every_tomogram_of_the_plan_are_counted(tmp_path):
    """A second tomogram in prepare's plan whose steps did not run: its steps are not done."""
    run = make_run(tmp_path, halves=False, truth=False)
    rows = [TomogramPlan(id=name, index=i, star=f"{name}.star", tomogram=str(tmp_path / f"{name}.mrc"), half1="",
                         half2="", tilt_angles="", voxel_size=PIXEL, defocus=0.0, tilt_min=-60.0, tilt_max=60.0,
                         subtomos=24, first_half=1, trains=True, corrects=name == "tomo", relion5=False)
            for i, name in enumerate(("tomo", "second"), start=1)]
    write_plan(rows, run / "plan" / "plan.csv")
    out = tmp_path / "r.html"
    result = CliRunner().invoke(report_command, [str(run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "Not run (or not finished): make-mask (1 of 2 tomograms), extract (1 of 2 tomograms)." in text
    assert re.search(r'steps done</div><div class="v warn">3 of 5<', text)  # prepare, refine, predict (tomo only)


def test_refine_folders_and_fsc_files_given_instead_of_the_run_folder_s(tmp_path, demo_run, demo_html):
    """Nextflow's report task: the STAR with its files in one folder, refine's states and the FSC passed as options."""
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    states = tmp_path / "states"
    for h in (1, 2):
        shutil.move(run / "refine" / f"half{h}", states / str(h) / "refine_state")
    shutil.rmtree(run / ".isonet")
    star = run / "tomograms_corrected.star"
    table = read_star(star).drop(columns=["rlnGoldStandardFsc"])
    write_star(table, star)
    (run / "fsc").mkdir()
    shutil.move(run / "corrected" / "tomo_fsc.json", run / "fsc" / "tomo_fsc.json")
    out = tmp_path / "report.html"
    args = [str(run), "-o", str(out), "--refine-dir", str(states / "1" / "refine_state"),
            "--refine-dir", str(states / "2" / "refine_state"), "--fsc", str(run / "fsc" / "tomo_fsc.json")]
    result = CliRunner().invoke(report_command, args)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert _section(text, "training") == _section(demo_html[1], "training")  # both halves' states, as in the run
    assert "refine half 2" in text and "4 of 4 iterations" in text
    fsc = _section(text, "fsc")
    assert "fsc/tomo_fsc.json" in fsc and "Not run" not in fsc
    result = CliRunner().invoke(report_command, [*args, "--refine-dir", str(states / "1" / "refine_state")])
    assert result.exit_code == 2 and "--refine-dir given 3 times" in result.output


def test_report_leaves_out_a_state_it_cannot_read_with_a_note(tmp_path):
    run = make_run(tmp_path, halves=True, truth=False)
    bad = run / "refine" / "half2" / "refine_state.json"
    bad.write_text(json.dumps(dict(json.loads(bad.read_text()), version=99)))
    out = tmp_path / "r.html"
    result = CliRunner().invoke(report_command, [str(run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "half 1: 4 of 4 iterations done" in text and "half 2: 4 of" not in text
    assert f"{bad}: refine state version 99 was written by a newer isonet-nf" in text


@pytest.mark.parametrize("case", ["missing", "empty", "unwritable", "folder_output"])
def test_bad_input_is_one_line(tmp_path, demo_run, case):
    out = tmp_path / "r.html"
    if case == "missing":
        args, needle = [str(tmp_path / "nope"), "-o", str(out)], "run folder not found"
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args, needle = [str(tmp_path / "empty"), "-o", str(out)], "no isonet run found"
    elif case == "unwritable":
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        out = locked / "r.html"
        args, needle = [str(demo_run), "-o", str(out)], "writable"
    else:
        out = tmp_path
        args, needle = [str(demo_run), "-o", str(out)], "is a folder"
    # the installed command, as a user types it (found beside this interpreter when PATH lacks it)
    isonet = shutil.which("isonet") or str(Path(sys.executable).with_name("isonet"))
    result = subprocess.run([isonet, "report", *args], capture_output=True, text=True)
    assert result.returncode == 2
    assert needle in result.stderr and result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if out != tmp_path:
        assert not out.exists()


def test_unwritable_output_is_caught_even_as_root(tmp_path, demo_run):
    """A path under a regular file can never be created, whoever runs the command."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(report_command, [str(demo_run), "-o", str(blocker / "r.html")])
    assert result.exit_code == 2
    assert "Error: " in result.output and "writable" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_chromium_renders_the_report(demo_html, tmp_path):
    path, text = demo_html
    n_images = text.count("<img")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"]
    url = path.resolve().as_uri()
    dom = subprocess.run([*flags, "--virtual-time-budget=5000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'<body[^>]*data-loaded="(\d+)"[^>]*data-images="(\d+)"', dom.stdout)
    assert match, "the page's load script did not run: " + dom.stdout[:300]
    assert int(match.group(2)) == n_images
    assert int(match.group(1)) == n_images, f"only {match.group(1)} of {n_images} pictures loaded"

    shot = tmp_path / "screenshot.png"
    res = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars", url],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    image = decode_png(shot.read_bytes())[..., :3]
    assert image.shape[:2] == (2400, 1280)
    assert image.std() > 20, "the screenshot is (nearly) blank"
    colours = np.unique(image[::4, ::4].reshape(-1, 3), axis=0)
    assert len(colours) > 200, f"only {len(colours)} colours: the pictures did not render"
    keep = os.environ.get("ISONET_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


# ------------------------------------------------------------------------------------ the figures' science


def test_read_parts_streams_the_same_slices_and_box():
    from isonet_steps.report.build import read_parts
    from isonet_steps.report.figures import central_box

    vol = np.random.default_rng(0).standard_normal((37, 300, 290)).astype(np.float32)
    slices, box = read_parts(vol, chunk_bytes=3 * 300 * 290 * 4)  # 3 planes per step: many steps
    np.testing.assert_array_equal(slices["XY"], vol[18])
    np.testing.assert_array_equal(slices["XZ"], vol[:, 150, :])
    np.testing.assert_array_equal(slices["YZ"], vol[:, :, 145])
    np.testing.assert_array_equal(box, vol[central_box(vol.shape)])
    assert box.shape == (37, 256, 256)


def test_kzkx_power_matches_a_direct_fft_and_sees_the_wedge():
    from isonet_steps.core.wedge import Wedge, measured_part
    from isonet_steps.report.figures import _taper, kzkx_log_power, wedge_power_ratio

    rng = np.random.default_rng(1)
    noise = rng.standard_normal((40, 12, 48)).astype(np.float32)
    d = (noise - noise.mean()) * _taper(40)[:, None, None] * _taper(48)[None, None, :]
    direct = np.fft.fftshift(np.mean(np.abs(np.fft.fftn(d, axes=(0, 2))) ** 2, axis=1))
    direct = np.log10(direct + 1e-12 * direct.max())[::-1]
    np.testing.assert_allclose(kzkx_log_power(noise), direct, atol=1e-4)
    # white noise fills the plane evenly; the same noise through a ±60° tilt series lacks the wedge
    assert 0.7 < wedge_power_ratio(kzkx_log_power(noise), (-60, 60)) < 1.4
    wedged = measured_part(noise, Wedge.from_range(-60, 60))
    assert wedge_power_ratio(kzkx_log_power(wedged), (-60, 60)) < 0.1
    # an asymmetric range: the wedge is where the tilt range says, not mirrored
    lopsided = measured_part(noise, Wedge.from_range(-30, 60))
    assert wedge_power_ratio(kzkx_log_power(lopsided), (-30, 60)) < 0.1
    assert wedge_power_ratio(kzkx_log_power(lopsided), (-60, 30)) > 0.3
