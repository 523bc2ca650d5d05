"""The README's before/after picture, drawn from a real run folder with the report's own slice code.

    isonet demo --outdir /tmp/isonet_demo            # the full demo (minutes); --quick corrects too little to see
    python benchmarks/before_after.py /tmp/isonet_demo --out docs/images/before_after.png

It reads the run's first tomogram the way ``isonet report`` does (``report.build``: raw, corrected and,
for the demo, the ground truth, each standardised over its central box) and lays out, side by side,
its central XY and XZ slices under one grey window, as the report's slice panels do, and the Fourier
power of the (kz, kx) plane under one colour range, as the report's spectra do. The XZ slice is the
side view in which the missing wedge stretches features along Z (the beam, down the page); the
spectrum shows the wedge itself, the dark sector around kz that the correction fills.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from isonet_steps.report.build import collect_run, tomogram_views
from isonet_steps.report.figures import POWER_CMAP, contrast_window, kzkx_log_power, power_window, slice_panel

#: Pixels per voxel in the picture (the demo's tomogram is 128 voxels wide).
SCALE = 2
#: Grey gap between panels and the height of the label strip, pixels.
GAP, LABEL_H = 6, 26
#: Volumes shown, in order, under the labels the report gives them.
SHOWN = ("raw", "corrected", "ground truth")


def panels(run_dir: Path) -> tuple[list[str], list[list[np.ndarray]]]:
    """Labels and rows of RGB panels, one per volume: XY and XZ slices (grey), the kz-kx power (inferno)."""
    run = collect_run(run_dir)
    if not run.tomograms:
        raise SystemExit(f"{run_dir}: no tomogram STAR found; give the --outdir of 'isonet demo' or 'isonet run'.")
    views = [v for v in tomogram_views(run, run.tomograms[0]) if v.label in SHOWN]
    if not any(v.label == "corrected" for v in views):
        raise SystemExit(f"{run_dir}: no corrected tomogram yet; let the run finish (predict), then rerun this.")
    from matplotlib import colormaps

    window = contrast_window(views[0].box)
    rows = [[np.repeat(slice_panel(v.slices[plane], window)[..., None], 3, axis=2) for v in views]
            for plane in ("XY", "XZ")]
    powers = [kzkx_log_power(v.box) for v in views]
    lo, hi = power_window(powers)
    rows.append([(colormaps[POWER_CMAP](np.clip((p - lo) / (hi - lo), 0, 1))[..., :3] * 255).astype(np.uint8)
                 for p in powers])
    return [v.label for v in views], rows


def compose(labels: list[str], rows: list[list[np.ndarray]]) -> Image.Image:
    """One picture: a label strip, then a row of panels per plane, all scaled by ``SCALE``."""
    widths = [p.shape[1] * SCALE for p in rows[0]]
    heights = [row[0].shape[0] * SCALE for row in rows]
    canvas = Image.new("RGB", (sum(widths) + GAP * (len(widths) + 1), LABEL_H + sum(heights) + GAP * (len(rows) + 1)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=16)  # Pillow's own scalable font (10.1 or later): no font file needed
    x = GAP
    for label, width in zip(labels, widths):
        draw.text((x + 2, 4), label, fill=(0, 0, 0), font=font)
        x += width + GAP
    y = LABEL_H + GAP
    for row, height in zip(rows, heights):
        x = GAP
        for panel, width in zip(row, widths):
            canvas.paste(Image.fromarray(panel).resize((width, height), Image.NEAREST), (x, y))
            x += width + GAP
        y += height + GAP
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="an 'isonet demo' or 'isonet run' output folder")
    ap.add_argument("--out", type=Path, default=Path("docs/images/before_after.png"))
    args = ap.parse_args()
    labels, rows = panels(args.run_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    compose(labels, rows).save(args.out, optimize=True)
    print(f"{args.out}: {', '.join(labels)}; XY and XZ central slices, kz-kx power; "
          f"{args.out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
