"""The numpy+zlib PNG toolkit: valid files that decode to the same pixels, and readable plots."""

from __future__ import annotations

import string
import struct
import zlib

import numpy as np
import pytest

from isonet_steps._bitmap_font import GLYPHS, text_bitmap
from isonet_steps.png import PALETTE, draw_text, encode_png, line_plot, to_uint8, write_png

CHANNELS = {0: 1, 2: 3, 6: 4}


def decode_png(data: bytes) -> np.ndarray:
    """A small independent PNG reader (8-bit, non-interlaced) that checks every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header, kinds = 8, b"", None, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        kinds.append(kind)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    width, height, depth, ctype, comp, filt, interlace = header
    assert depth == 8 and comp == 0 and filt == 0 and interlace == 0
    ch = CHANNELS[ctype]
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * ch)
    out = np.zeros((height, width * ch), dtype=np.int64)
    for r in range(height):
        ftype, line = raw[r, 0], raw[r, 1:].astype(np.int64)
        up = out[r - 1] if r else np.zeros(width * ch, np.int64)
        if ftype == 0:
            out[r] = line
        elif ftype == 2:
            out[r] = (line + up) % 256
        else:  # Sub, Average, Paeth: pixel by pixel
            for i in range(width * ch):
                left = out[r, i - ch] if i >= ch else 0
                ul = up[i - ch] if i >= ch else 0
                if ftype == 1:
                    pred = left
                elif ftype == 3:
                    pred = (left + up[i]) // 2
                else:
                    p = left + up[i] - ul
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else ul)
                out[r, i] = (line[i] + pred) % 256
    img = out.astype(np.uint8).reshape(height, width, ch)
    return img[:, :, 0] if ch == 1 else img


@pytest.mark.parametrize("shape", [(7, 5), (16, 9, 3), (3, 11, 4), (1, 1)])
def test_round_trip(shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(img)), img)


def test_header_and_bool_input():
    data = encode_png(np.eye(4, 6, dtype=bool))
    width, height, depth, ctype = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, ctype) == (6, 4, 8, 0)
    np.testing.assert_array_equal(decode_png(data), np.eye(4, 6, dtype=np.uint8) * 255)


def test_rejects_wrong_dtype_or_shape():
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((0, 4), np.uint8))


def test_write_png_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "sub" / "a.png"
    img = np.arange(60, dtype=np.uint8).reshape(6, 10)
    write_png(path, img)
    write_png(path, img[::-1])
    np.testing.assert_array_equal(decode_png(path.read_bytes()), img[::-1])
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.png"]


def test_to_uint8_window():
    img = np.array([[-1.0, 0.0, 0.5], [1.0, 2.0, np.float32(0.25)]])
    out = to_uint8(img, 0.0, 1.0)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0, 128], [255, 255, 64]])
    np.testing.assert_array_equal(to_uint8(np.array([0.0, 1.0, 2.0]), 1.0, 1.0), [0, 128, 255])


def test_font_covers_text_and_glyphs_differ():
    needed = string.ascii_letters + string.digits + " .,-/()=%:+_'"
    assert set(needed) <= set(GLYPHS)
    shapes = {g.shape for g in GLYPHS.values()}
    assert shapes == {(9, 5)}
    seen = {}
    for ch, g in GLYPHS.items():
        key = g.tobytes()
        assert key not in seen, f"{ch!r} looks like {seen.get(key)!r}"
        seen[key] = ch
    ink = text_bitmap("FSC 0.143", scale=2)
    assert ink.shape == (18, (9 * 6 - 1) * 2) and ink.any()


def test_draw_text_and_rotation():
    canvas = np.full((40, 80, 3), 255, np.uint8)
    draw_text(canvas, 2, 2, "Ab1")
    assert (canvas[2:9, 2:19] < 128).any() and (canvas[20:] == 255).all()
    tall = np.full((80, 40, 3), 255, np.uint8)
    draw_text(tall, 2, 40, "FSC", rotate=True, anchor="lm")
    dark = np.argwhere((tall < 128).any(axis=2))
    assert np.ptp(dark[:, 0]) > np.ptp(dark[:, 1])  # taller than wide


def test_line_plot_draws_axes_curves_legend_and_thresholds():
    f = np.linspace(0.002, 0.05, 25)
    curve = 1 / (1 + np.exp((f - 0.025) / 0.003))
    gap = curve.copy()
    gap[10:12] = np.nan
    img = line_plot({"one": (f, curve), "two": (f, 0.8 * curve), "gap": (f, gap * 0.5)},
                    title="Test", xlabel="frequency (1/A)", ylabel="FSC", ylim=(-0.2, 1.05))
    assert img.shape == (400, 640, 3) and img.dtype == np.uint8
    nonwhite = (img < 250).any(axis=2).mean()
    assert 0.02 < nonwhite < 0.5
    for color in PALETTE[:3]:  # each series in its own colour
        close = (np.abs(img.astype(int) - np.array(color)) < 12).all(axis=2)
        assert close.sum() > 40, color
    # the dashed threshold lines are gray and broken
    gray = (np.abs(img.astype(int) - 120) < 10).all(axis=2)
    rows = np.flatnonzero(gray.sum(axis=1) > 150)
    assert rows.size >= 2
    assert not gray[rows[0], 100:500].all()


def test_line_plot_defaults_and_odd_inputs():
    img = line_plot({"flat": ([0, 1, 2], [3, 3, 3])}, hlines=())
    assert img.shape == (400, 640, 3) and (img < 250).any()
    img = line_plot({"single": ([1.0], [2.0]), "empty": ([], [])}, width=300, height=200)
    assert img.shape == (200, 300, 3)
