"""The report's "Where the halves disagree" section: local agreement of two corrected halves.

Two halves of the data (gold-standard half networks today, noise2noise predictions of each half
later) carry independent noise. Where the network restores real structure both corrected halves
show it and correlate locally; where it invents structure from noise each half invents its own and
the local correlation falls towards 0 (:mod:`isonet_steps.core.disagreement`). Tomograms can be
large, so only the slabs around the drawn sections are read and correlated, in bands of rows.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.disagreement import disagreement_summary, slab_local_correlation
from ..io.errors import InputError
from .html import esc, figure, not_run, plot_figure, section

__all__ = ["WINDOW", "SMOOTH", "AGREEMENT_CMAP", "AGREEMENT_RANGE", "xy_agreement", "xz_agreement",
           "agreement_rgb", "agreement_colorbar", "halves_block", "halves_section"]

#: Edge (voxels) of the cube the local correlation is taken over: small enough to localise a
#: disagreement, large enough (729 voxels) that independent noise correlates to ~0 ± 0.04.
WINDOW = 9
#: Gaussian low-pass (sigma, voxels) before correlating: the map follows structure, not pixel noise.
SMOOTH = 1.0
#: Sequential, perceptually uniform, readable in grey: dark = the halves disagree, bright = they agree.
AGREEMENT_CMAP = "magma"
#: Fixed colour range: the same colour means the same correlation in every tomogram and run.
#: Negative values (chance anti-correlation in noise) are drawn as 0: they mean "no shared structure" too.
AGREEMENT_RANGE = (0.0, 1.0)
#: Local correlation below this counts as disagreement in the summary (as in disagreement_summary).
LOW = 0.2
#: Depths (fractions of Z) of the XY sections drawn: the centre, as in the slices section, and one off it.
XY_DEPTHS = (0.5, 0.3)
#: Rows of an XY section correlated at once: bounds the memory on large tomograms.
ROWS_PER_BAND = 256
_TITLE = "Where the halves disagree"


def _reach() -> int:
    """Slices on each side of a section that its local correlation depends on (window + smoothing)."""
    return WINDOW // 2 + 1 + int(math.ceil(4 * SMOOTH))


def xy_agreement(a: np.ndarray, b: np.ndarray, z: int, rows: int = ROWS_PER_BAND) -> np.ndarray:
    """The local-correlation map's XY section at ``z``, from the slab around it, ``rows`` rows at a time.

    Each band of rows is read with the window's reach on both sides, so the result equals the
    section of the whole volume's map; ``a`` and ``b`` may be memory maps (only the slab is read).
    """
    ny, nx = a.shape[1], a.shape[2]
    reach = _reach()
    out = np.empty((ny, nx), np.float32)
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        lo, hi = max(0, y0 - reach), min(ny, y1 + reach)
        band = slab_local_correlation(a[:, lo:hi], b[:, lo:hi], z, WINDOW, smooth=SMOOTH)
        out[y0:y1] = band[y0 - lo:y1 - lo]
    return out


def xz_agreement(a: np.ndarray, b: np.ndarray, y: int) -> np.ndarray:
    """The local-correlation map's XZ section at ``y``: a thin Y slab, transposed so Y leads."""
    reach = _reach()
    lo, hi = max(0, y - reach), min(a.shape[1], y + reach + 1)
    slab_a = np.asarray(a[:, lo:hi, :]).transpose(1, 0, 2)
    slab_b = np.asarray(b[:, lo:hi, :]).transpose(1, 0, 2)
    return slab_local_correlation(slab_a, slab_b, y - lo, WINDOW, smooth=SMOOTH)


def _binned(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor x factor`` blocks (the ragged edge dropped), as for the grey slices."""
    if factor <= 1:
        return image
    h, w = max(factor, image.shape[0] // factor * factor), max(factor, image.shape[1] // factor * factor)
    return image[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def agreement_rgb(corr: np.ndarray, factor: int = 1) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 picture of a correlation section: :data:`AGREEMENT_CMAP` over :data:`AGREEMENT_RANGE`."""
    from ..figures.plots import prepare_matplotlib

    prepare_matplotlib()
    from matplotlib import colormaps

    lo, hi = AGREEMENT_RANGE
    scaled = np.clip((_binned(np.asarray(corr, np.float32), factor) - lo) / (hi - lo), 0.0, 1.0)
    return (colormaps[AGREEMENT_CMAP](scaled)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def _rgb_figure(rgb: np.ndarray, caption: str) -> str:
    """A colour picture as an embedded PNG with its caption (the grey slices use html.figure)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    h, w = rgb.shape[:2]
    cls = ' class="px"' if w < 400 else ""
    return (f'<figure><img{cls} src="data:image/png;base64,{data}" width="{w}" height="{h}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def agreement_colorbar(width: int = 440, height: int = 74):
    """The colour bar of the agreement maps, with the summary's 0.2 threshold marked."""
    from ..figures.plots import new_figure, style

    fig = new_figure(width, height)
    with style():
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        ax = fig.add_subplot()
        mappable = ScalarMappable(norm=Normalize(*AGREEMENT_RANGE), cmap=AGREEMENT_CMAP)
        fig.colorbar(mappable, cax=ax, orientation="horizontal",
                     label="local correlation of the two corrected halves (≤ 0 drawn as 0)")
        ax.axvline(LOW, color="#78e6ff", linewidth=1.6)
        ax.set_xticks([0.0, LOW, 0.4, 0.6, 0.8, 1.0])
    return fig


@dataclass
class _Section:
    """One drawn section: its name, the corrected slice, the agreement map, the mask's slice (or None)."""

    name: str
    corrected: np.ndarray
    agreement: np.ndarray
    mask: np.ndarray | None


def _corrected_slice(corrected, h1, h2, key) -> np.ndarray:
    """The corrected tomogram's section, or the mean of the halves' when there is no corrected tomogram."""
    if corrected is not None:
        return np.asarray(corrected[key], np.float32)
    return 0.5 * (np.asarray(h1[key], np.float32) + np.asarray(h2[key], np.float32))


def _sections(h1, h2, corrected, mask) -> list[_Section]:
    """The XY sections at :data:`XY_DEPTHS` and the central XZ section of the agreement map."""
    nz, ny, _ = h1.shape
    out = []
    for z in dict.fromkeys(min(nz - 1, int(nz * f)) for f in XY_DEPTHS):
        out.append(_Section(f"XY at z = {z}", _corrected_slice(corrected, h1, h2, np.s_[z]),
                            xy_agreement(h1, h2, z), None if mask is None else np.asarray(mask[z])))
    key = np.s_[:, ny // 2, :]
    out.append(_Section(f"XZ at y = {ny // 2}", _corrected_slice(corrected, h1, h2, key),
                        xz_agreement(h1, h2, ny // 2), None if mask is None else np.asarray(mask[key])))
    return out


def _read_sections(t) -> tuple[list[_Section], bool]:
    """The drawn sections from memory maps of the halves (and corrected tomogram and mask).

    Also whether the grey panels are the corrected tomogram's (False: the mean of the halves).
    """
    from contextlib import ExitStack

    from ..io.mrc import open_memmap

    with ExitStack() as stack:
        h1 = stack.enter_context(open_memmap(t.half1, "corrected half 1")).data
        h2 = stack.enter_context(open_memmap(t.half2, "corrected half 2")).data
        if h1.shape != h2.shape:
            raise InputError(f"{t.half2}: corrected half 2 is {h2.shape[::-1]} voxels (X, Y, Z), half 1 "
                             f"{h1.shape[::-1]}; the halves must be predictions of the same tomogram.")
        corrected = mask = None
        if t.corrected is not None:
            c = stack.enter_context(open_memmap(t.corrected, "corrected tomogram")).data
            corrected = c if c.shape == h1.shape else None
        if t.mask is not None:
            m = stack.enter_context(open_memmap(t.mask, "mask")).data
            mask = m if m.shape == h1.shape else None
        return _sections(h1, h2, corrected, mask), corrected is not None


def _summary(sections: list[_Section]) -> tuple[str, dict[str, float]]:
    """The one-line summary: median local correlation and the fraction below 0.2, inside the mask if any."""
    values = np.concatenate([s.agreement.ravel() for s in sections])
    masks = [s.mask for s in sections if s.mask is not None]
    inside = np.concatenate([np.ravel(m > 0) for m in masks]) if len(masks) == len(sections) else None
    masked = inside is not None and bool(inside.any())  # an empty mask in these sections: use them whole
    stats = disagreement_summary(values, inside if masked else None)
    where = "inside the sample mask" if masked else "over the whole sections (no sample mask)"
    text = (f"Median local correlation {stats['median']:.2f} {where}; {100 * stats['fraction_below_0.2']:.0f}% "
            f"of those voxels below {LOW:g} (over the {len(sections)} sections shown).")
    return text, stats


def halves_block(run, t) -> str:
    """One tomogram's agreement maps beside its corrected sections, with the summary; "" without halves."""
    from .figures import contrast_window, display_factor, slice_panel

    if t.half1 is None or t.half2 is None:
        return ""
    title = f"<h3>Tomogram {t.index}: {esc(Path(t.raw_name).name or '(unnamed)')}</h3>"
    try:
        sections, has_corrected = _read_sections(t)
    except InputError as exc:
        run.notes.append(str(exc))
        return title + not_run("The corrected halves could not be read (see Notes).")
    summary, _ = _summary(sections)
    grey = "corrected" if has_corrected else "mean of the halves"
    window = contrast_window(np.concatenate([s.corrected.ravel() for s in sections]))
    shape = (sections[-1].corrected.shape[0], *sections[0].corrected.shape)
    factor = display_factor(shape)
    grid = ['<div class="panels" style="grid-template-columns: repeat(2, minmax(0, 520px))">',
            f'<div class="colhead">{esc(grey)}</div><div class="colhead">agreement of the halves</div>']
    for s in sections:
        panel = slice_panel(s.corrected, window, factor)
        grid.append(figure(panel, f"{grey} · {s.name}", pixelated=panel.shape[1] < 400))
        grid.append(_rgb_figure(agreement_rgb(s.agreement, factor), f"local correlation · {s.name}"))
    grid.append("<div></div>" + plot_figure(agreement_colorbar(), "colour scale of the agreement maps",
                                            cls="plot colorbar") + "</div>")
    return "\n".join([title, f'<p class="summary"><b>{esc(summary)}</b></p>', "".join(grid)])


def halves_section(run, blocks: list[str]) -> str:
    """Local agreement of the corrected halves, or why there is none."""
    blocks = [b for b in blocks if b]
    if not blocks:
        why = ("the gold-standard step has not finished yet." if run.halves
               else "no corrected halves (rlnCorrectedTomoHalf1/2) in the tomogram STAR; run with --halves.")
        return section("halves", _TITLE, not_run(f"Not run: {why}"))
    caption = (
        '<p class="caption">How to read it: each map is the Pearson correlation of the two corrected halves in a '
        f"{WINDOW}³-voxel window around every voxel (both low-passed by a Gaussian of σ = {SMOOTH:g} voxel first), "
        "beside the same section of the corrected tomogram. The halves carry independent noise, so structure they "
        "both show is in the data: bright (near 1) means the halves agree there. Dark (near 0) means structure that "
        "one half has and the other has not: noise, or structure the network may be inventing. Expect dark in empty "
        "ice and outside the sample; dark over features you interpret is a warning about those features. "
        f"The cyan mark on the colour bar is the summary's threshold, {LOW:g}. The colour range is fixed at "
        f"{AGREEMENT_RANGE[0]:g} to {AGREEMENT_RANGE[1]:g} (sequential '{AGREEMENT_CMAP}' map), so maps of "
        "different tomograms and runs compare directly.</p>")
    return section("halves", _TITLE, caption + "\n".join(blocks))
