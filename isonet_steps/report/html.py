"""HTML building blocks of the run report: one self-contained page, no network, no external files.

Slices are grey PNG data URIs; plots and spectra are inline SVG (their text stays text, which the
reader can select and search); the style sheet and one small script (which counts the pictures
the browser decoded, for the rendering test) are inline; fonts are the system's own.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["esc", "img", "table", "section", "not_run", "figure", "plot_figure", "fmt_seconds", "fmt_value", "page"]

CSS = """
:root { --ink:#1d232b; --muted:#5b6673; --line:#dde2e8; --accent:#1f64c8; --bg:#f3f5f8; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background:#17202b; color:#f4f7fb; padding:26px 0 22px; }
.wrap { max-width:1240px; margin:0 auto; padding:0 24px; }
header h1 { margin:0 0 2px; font-size:26px; font-weight:650; letter-spacing:.2px; }
header .sub { color:#b8c4d2; font-size:13.5px; word-break:break-all; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin-top:16px; }
.card { background:#223041; border:1px solid #33465c; border-radius:8px; padding:8px 14px; min-width:150px; }
.card .k { color:#9fb2c7; font-size:11.5px; text-transform:uppercase; letter-spacing:.6px; }
.card .v { font-size:17px; font-weight:600; color:#fff; }
.card .v.ok { color:#8fe3a6; } .card .v.warn { color:#ffd27a; }
nav { background:#fff; border-bottom:1px solid var(--line); position:sticky; top:0; z-index:2; }
nav .wrap { display:flex; flex-wrap:wrap; gap:4px 18px; padding-top:9px; padding-bottom:9px; font-size:14px; }
nav a { color:var(--accent); text-decoration:none; } nav a:hover { text-decoration:underline; }
main { padding:18px 0 40px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 22px 20px;
  margin:0 0 18px; }
section h2 { margin:0 0 8px; font-size:20px; font-weight:650; }
section h3 { margin:18px 0 8px; font-size:16px; font-weight:600; color:#2b3440; }
p.caption, .note { color:var(--muted); font-size:13.5px; margin:6px 0 10px; max-width:1060px; }
.warnbox { color:#6e1a10; background:#fdecea; border:1px solid #f0b4ab; border-left:6px solid #c0392b;
  border-radius:6px; padding:10px 14px; margin:8px 0 10px; font-size:14px; max-width:1060px; }
p.summary { font-size:14.5px; margin:4px 0 8px; }
p.notrun { color:#8a5a00; background:#fff7e6; border:1px solid #f3dca6; border-radius:6px; padding:8px 12px;
  margin:6px 0; }
.panels { display:grid; gap:10px 14px; align-items:start; margin:8px 0 6px; }
.colhead { font-weight:600; font-size:14px; text-align:center; color:#2b3440; }
figure { margin:0; }
figure img { display:block; width:100%; height:auto; border:1px solid #c9d0d8; background:#000; }
figure.plot svg { display:block; max-width:100%; height:auto; }
img.px { image-rendering: pixelated; }
figcaption { font-size:12.5px; color:var(--muted); text-align:center; margin-top:3px; }
.plots { display:flex; flex-wrap:wrap; gap:16px; align-items:flex-start; }
.plots figure { flex:0 1 auto; max-width:100%; }
.plots .side { flex:1 1 360px; }
.pair { display:grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap:0 18px; align-items:start; }
table { border-collapse:collapse; font-size:13.5px; margin:6px 0 10px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
th { background:#f0f3f7; font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.changed td { background:#fffbea; }
td.path { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px;
  word-break:break-all; max-width:520px; }
details summary { cursor:pointer; color:var(--accent); font-size:14px; margin:6px 0; }
.better { color:#1d7a3a; font-weight:600; } .worse { color:#b0342a; font-weight:600; }
footer { color:var(--muted); font-size:12.5px; text-align:center; padding:6px 0 30px; }
"""

# Counts the pictures the browser decoded; the rendering test reads data-loaded from the DOM.
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, n = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) { n++; } }
  document.body.setAttribute("data-loaded", String(n));
  document.body.setAttribute("data-images", String(imgs.length));
});
"""


def esc(value: object) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def img(image: np.ndarray, alt: str, *, pixelated: bool = False) -> str:
    """An ``<img>`` holding ``image`` (a grey uint8 slice) as a PNG data URI."""
    from ..figures.plots import gray_png

    data = base64.b64encode(gray_png(image)).decode("ascii")
    h, w = image.shape[:2]
    cls = ' class="px"' if pixelated else ""
    return f'<img{cls} src="data:image/png;base64,{data}" width="{w}" height="{h}" alt="{esc(alt)}">'


def figure(image: np.ndarray, caption: str, *, alt: str | None = None, pixelated: bool = False, cls: str = "") -> str:
    """An 8-bit image as an embedded PNG with its caption: slices stay pictures, plots are SVG."""
    klass = f' class="{cls}"' if cls else ""
    return (f"<figure{klass}>{img(image, alt or caption, pixelated=pixelated)}"
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def plot_figure(fig, caption: str, *, alt: str | None = None, cls: str = "plot") -> str:
    """A matplotlib figure as inline SVG with a caption."""
    from ..figures.plots import figure_svg

    return (f'<figure class="{esc(cls)}">{figure_svg(fig, label=alt or caption)}'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table(header: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Sequence[int] = (),
          row_classes: Sequence[str] | None = None, raw_html: bool = False) -> str:
    """A table; columns listed in ``numeric`` are right-aligned. Cells are escaped unless ``raw_html``."""
    cells = lambda v: str(v) if raw_html else esc(v)  # noqa: E731
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        klass = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        tds = "".join(f'<td{" class=num" if i in numeric else ""}>{cells(v)}</td>' for i, v in enumerate(row))
        body.append(f"<tr{klass}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def not_run(text: str) -> str:
    """A section's body when its step has not run: the reader sees why, not an empty box."""
    return f'<p class="notrun">{esc(text)}</p>'


def section(anchor: str, title: str, body: str) -> str:
    """One report section with the anchor the table of contents links to."""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def fmt_seconds(seconds: float | None) -> str:
    """``83.2 -> "1 min 23 s"``; em dash when unknown."""
    if seconds is None or not math.isfinite(float(seconds)):
        return "—"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def fmt_value(value: object) -> str:
    """Settings values as people write them: lists comma-separated, None as "default"."""
    if value is None:
        return "(default)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_value(v) for v in value)
    return str(value)


def page(title: str, header: str, nav: Sequence[tuple[str, str]], body: str, footer: str) -> str:
    """The whole document."""
    links = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n<script>{SCRIPT}</script>\n</head>\n<body>\n"
        f"<header><div class=\"wrap\">{header}</div></header>\n"
        f"<nav><div class=\"wrap\">{links}</div></nav>\n"
        f"<main><div class=\"wrap\">\n{body}\n</div></main>\n"
        f"<footer>{footer}</footer>\n</body>\n</html>\n"
    )
