"""IMOD binary model files (``.mod``): read every contour point, write simple models.

IsoNet 1 turned a mask-boundary model into text with IMOD's ``model2point``; reading the binary
file here means IMOD need not be installed. Layout (IMOD binary spec "V1.2", all numbers
big-endian): 8 bytes ``IMOD`` + ``V1.2``; a 232-byte model header (name, xmax, ymax, zmax,
object count, flags, ...); then chunks, each a 4-character ID:

- ``OBJT`` + 176 bytes of object settings;
- ``CONT`` + psize, flags, time, surf (4 × int32) + psize × (x, y, z) float32;
- ``MESH`` + vsize, lsize, flag (3 × int32), time, surf (2 × int16) + vsize × 3 float32 + lsize int32;
- ``IEOF``: end of the model;
- any other ID (IMAT, SIZE, LABL, VIEW, CLIP, MINX, ...) + an int32 byte count + that many bytes,
  skipped here.

Coordinates are in voxels of the volume the model was drawn on: X runs 0..NX and Y 0..NY (voxel i
spans [i, i+1)), Z runs -0.5..NZ-0.5 (a point drawn on section k has z = k).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["ImodModel", "read_imod", "read_imod_points", "write_imod_model"]

_ID_SIZE = 8
_MODEL_HEADER = 232
_OBJECT_SIZE = 176
_CONTOUR_HEADER = 16
_MESH_HEADER = 16
#: Model flag bit 10: Z coordinates start from -0.5 (section k at z = k).
FLAG_Z_FROM_MINUS_HALF = 1 << 10


@dataclass(frozen=True)
class ImodModel:
    """What make-mask needs from a model: every point in file order and the image size."""

    points: np.ndarray  # (N, 3) float32 x, y, z in voxels, all contours of all objects, in file order
    contour_sizes: tuple[int, ...]  # points per contour, in file order
    image_size: tuple[int, int, int]  # xmax, ymax, zmax from the header (the size of the volume drawn on)
    flags: int  # model flags


_FIX = "re-save it as a binary model in 3dmod, or fix rlnMaskBoundary or set it to None"


def read_imod(path: str | os.PathLike) -> ImodModel:
    """Read an IMOD binary model; one-line InputError for a missing, foreign, truncated or corrupt file."""
    path = Path(path)
    data = _model_bytes(path)
    if data[:4] != b"IMOD":
        kind = "an ASCII IMOD model" if data[:4].lower() == b"imod" else "not an IMOD binary model (no 'IMOD' ID)"
        raise InputError(f"{path}: {kind}; {_FIX}.")
    if len(data) < _ID_SIZE + _MODEL_HEADER:
        raise InputError(f"{path}: IMOD model truncated in its header ({len(data)} bytes, "
                         f"expected at least {_ID_SIZE + _MODEL_HEADER}); {_FIX}.")
    xmax, ymax, zmax, _objects, flags = struct.unpack_from(">4iI", data, _ID_SIZE + 128)
    contours = _contours(path, data)
    points = np.concatenate(contours).astype(np.float32) if contours else np.zeros((0, 3), np.float32)
    if not np.isfinite(points).all():
        raise InputError(f"{path}: IMOD model has NaN or infinite coordinates; {_FIX}.")
    return ImodModel(points=points, contour_sizes=tuple(len(c) for c in contours),
                     image_size=(int(xmax), int(ymax), int(zmax)), flags=int(flags))


def _model_bytes(path: Path) -> bytes:
    """The whole file (models are small); one line naming the file when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: IMOD model not found; fix rlnMaskBoundary or set it to None.") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an IMOD model; fix rlnMaskBoundary or set it to None.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read IMOD model ({exc.strerror}); "
                         f"fix rlnMaskBoundary or set it to None.") from None


def _contours(path: Path, data: bytes) -> list[np.ndarray]:
    """Every CONT chunk's points, in file order, walking the chunks after the header up to IEOF."""

    def need(pos: int, n: int, what: str) -> None:
        if n < 0 or pos + n > len(data):
            raise InputError(f"{path}: IMOD model truncated or corrupt in {what} at byte {pos} "
                             f"(needs {n} bytes, {len(data) - pos} left); {_FIX}.")

    contours: list[np.ndarray] = []
    pos = _ID_SIZE + _MODEL_HEADER
    while True:
        need(pos, 4, "the chunk list (no IEOF end marker)")
        chunk = data[pos:pos + 4]
        pos += 4
        if chunk == b"IEOF":
            return contours
        if chunk == b"OBJT":
            need(pos, _OBJECT_SIZE, "an OBJT chunk")
            pos += _OBJECT_SIZE
        elif chunk == b"CONT":
            need(pos, _CONTOUR_HEADER, "a CONT chunk")
            (psize,) = struct.unpack_from(">i", data, pos)
            pos += _CONTOUR_HEADER
            need(pos, 12 * psize, f"a CONT chunk of {psize} points")
            contours.append(np.frombuffer(data, dtype=">f4", count=3 * psize, offset=pos).reshape(psize, 3))
            pos += 12 * psize
        elif chunk == b"MESH":
            need(pos, _MESH_HEADER, "a MESH chunk")
            vsize, lsize = struct.unpack_from(">2i", data, pos)
            pos += _MESH_HEADER
            size = 12 * vsize + 4 * lsize if min(vsize, lsize) >= 0 else -1
            need(pos, size, f"a MESH chunk of {vsize} vertices and {lsize} indices")
            pos += size
        elif all(48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 for b in chunk):
            need(pos, 4, f"a {chunk.decode()} chunk")
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            need(pos, size, f"a {chunk.decode()} chunk")
            pos += size
        else:
            raise InputError(f"{path}: IMOD model corrupt: unreadable chunk ID {chunk!r} at byte {pos - 4}; {_FIX}.")


def read_imod_points(path: str | os.PathLike) -> np.ndarray:
    """All contour points of all objects of an IMOD binary model, in file order: (N, 3) float32 x, y, z."""
    return read_imod(path).points


def write_imod_model(
    path: str | os.PathLike,
    contours: Sequence[np.ndarray],
    image_size: tuple[int, int, int] | None = None,
    name: str = "isonet boundary",
) -> Path:
    """Write ``contours`` (each (n, 3) x, y, z in voxels) as one object of an IMOD binary model.

    Useful to make a mask boundary without 3dmod (e.g. from a polygon computed elsewhere) and for
    tests. ``image_size`` (NX, NY, NZ) goes into the header; by default it is taken from the points'
    extent. Z uses IMOD's current convention (flag bit 10: section k at z = k). Written atomically.
    """
    from .atomic import write_bytes

    arrays = [np.asarray(c, dtype=np.float64).reshape(-1, 3) for c in contours]
    if image_size is None:
        every = np.concatenate(arrays) if arrays else np.zeros((0, 3))
        nx, ny, nz = (int(np.ceil(every[:, i].max())) + 1 if len(every) else 1 for i in range(3))
        image_size = (nx, ny, nz)
    out = bytearray(b"IMODV1.2")
    model_name = name.encode("ascii", "replace")[:127].ljust(128, b"\0")
    out += struct.pack(">128s4iI4i6f5if2i3f", model_name, *image_size, 1, FLAG_Z_FROM_MINUS_HALF,
                       1, 1, 0, 255,  # drawmode, mousemode, black and white levels
                       0.0, 0.0, 0.0, 1.0, 1.0, 1.0,  # offsets, scales
                       0, 0, 0, 1, 128,  # current object / contour / point, resolution, threshold
                       1.0, 0, 0,  # pixel size, units (0: pixels), checksum
                       0.0, 0.0, 0.0)  # alpha, beta, gamma
    object_name = b"boundary".ljust(64, b"\0")
    out += b"OBJT" + struct.pack(">64s64s4i3fi8B2i", object_name, b"\0" * 64, len(arrays), 0, 0, 0,
                                 0.0, 1.0, 0.0, 0,  # green, default point size
                                 1, 3, 1, 1, 0, 0, 0, 0,  # symbol, symbol size, line widths, styles, transparency
                                 0, 0)  # meshes, surfaces
    for pts in arrays:
        out += b"CONT" + struct.pack(">iIii", len(pts), 0, 0, 0) + pts.astype(">f4").tobytes()
    out += b"IEOF"
    return write_bytes(path, bytes(out))
