#!/usr/bin/env python3
"""Seams of tiled prediction: gradient energy at tile borders against everywhere else.

A phantom tomogram is corrected tile by tile by a U-Net whose output depends on each tile's
context (randomly initialised, batch norm calibrated on the tomogram, so no training is needed);
then, along each axis, the mean squared difference between neighbouring planes of the network's
correction (output − input, where tiling artefacts live; the residual input would hide them) is
compared where tiles meet (the cross-fade zones) and elsewhere, and the same for the corrected
tomogram itself. A ratio near 1 means no seams. The same is printed
for naive tiling (each tile's centre cube pasted, no blending; IsoNet 0.2) to show the measure sees
seams when there are some.

    python benchmarks/seams.py [--shape 64,160,160] [--cube 32] [--crop 48]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def border_ratio(volume: np.ndarray, borders: list[np.ndarray]) -> list[float]:
    """Per axis: mean squared plane-to-plane difference at borders / elsewhere."""
    ratios = []
    for axis, at_border in enumerate(borders):
        diff = np.diff(volume, axis=axis) ** 2
        energy = diff.mean(axis=tuple(a for a in range(3) if a != axis))
        mask = at_border[: energy.size]
        ratios.append(float(energy[mask].mean() / energy[~mask].mean()))
    return ratios


def naive_tiled(predict_fn, volume: np.ndarray, cube: int, crop: int) -> np.ndarray:
    """IsoNet 0.2: tiles at stride cube, only their centre cube kept, no blending."""
    pad = (crop - cube) // 2
    counts = [int(np.ceil(n / cube)) for n in volume.shape]
    padded = np.pad(volume, [(pad, c * cube - n + pad) for c, n in zip(counts, volume.shape)], mode="symmetric")
    out = np.zeros([c * cube for c in counts], dtype=np.float32)
    for kz in range(counts[0]):
        for ky in range(counts[1]):
            for kx in range(counts[2]):
                z, y, x = kz * cube, ky * cube, kx * cube
                tile = padded[z:z + crop, y:y + crop, x:x + crop][None, ..., None]
                inner = predict_fn(tile)[0, pad:pad + cube, pad:pad + cube, pad:pad + cube, 0]
                out[z:z + cube, y:y + cube, x:x + cube] = inner
    return out[: volume.shape[0], : volume.shape[1], : volume.shape[2]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="64,160,160")
    ap.add_argument("--cube", type=int, default=32)
    ap.add_argument("--crop", type=int, default=48)
    ap.add_argument("--filter-base", type=int, default=8)
    ap.add_argument("--model", default=None,
                    help="a trained .keras model (e.g. from benchmarks/quality.py) instead of a random one")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from isonet_steps.network.devices import configure

    configure("cpu")
    import keras

    from isonet_steps.core.normalize import to_network
    from isonet_steps.core.phantom import make_phantom
    from isonet_steps.network.inference import model_predict_fn, predict_tiled
    from isonet_steps.network.refine import recalibrate_batch_norm
    from isonet_steps.network.tiles import plan_tiles
    from isonet_steps.network.unet import build_unet

    shape = tuple(int(v) for v in args.shape.split(","))
    volume = to_network(make_phantom(shape, seed=3).tomogram)
    if args.model:
        from isonet_steps.network.unet import load_model

        model = load_model(args.model)
    else:
        keras.utils.set_random_seed(0)
        model = build_unet(depth=3, filter_base=args.filter_base, convs_per_depth=3)
        rng = np.random.default_rng(0)
        starts = [rng.integers(0, n - args.crop + 1, size=8) for n in shape]
        batches = [volume[z:z + args.crop, y:y + args.crop, x:x + args.crop][None, ..., None]
                   for z, y, x in zip(*starts)]
        recalibrate_batch_norm(model, batches)
    predict_fn = model_predict_fn(model)

    plan = plan_tiles(shape, args.cube, args.crop)
    borders = []
    for axis, n in enumerate(shape):
        b = np.zeros(n, dtype=bool)
        for k in range(1, plan.n_tiles[axis]):
            b[max(0, k * args.cube - 1): k * args.cube + plan.overlap] = True  # the cross-fade and its edges
        borders.append(b)
    blended = predict_tiled(predict_fn, volume, cube=args.cube, crop=args.crop, batch_size=8, progress_bar=False)
    naive = naive_tiled(predict_fn, volume, args.cube, args.crop)
    naive_borders = []
    for n in shape:
        b = np.zeros(n, dtype=bool)
        b[args.cube - 1::args.cube] = True  # the plane pair across each paste boundary
        naive_borders.append(b)
    print(f"phantom {shape}, tiles {args.crop}³ at stride {args.cube}, overlap {plan.overlap}")
    print(f"{'tiling':40s} {'Z':>7s} {'Y':>7s} {'X':>7s}   (gradient energy at tile borders / elsewhere)")
    rows = [("blended (isonet-nf)", blended, borders), ("naive centre cubes (v0.2)", naive, naive_borders)]
    for name, out, where in rows:
        print(f"{name + ', correction':40s} " + " ".join(f"{r:7.3f}" for r in border_ratio(out - volume, where)))
        print(f"{name + ', output':40s} " + " ".join(f"{r:7.3f}" for r in border_ratio(out, where)))
    # Content can make the correction stronger exactly where tiles meet (few tiles along Z); a
    # seam-free tiling is invariant to moving the tile grid, so compare with a grid shifted by cube/2.
    shift = args.cube // 2
    padded = np.pad(volume, [(shift, 0)] * 3, mode="symmetric")
    moved = predict_tiled(predict_fn, padded, cube=args.cube, crop=args.crop, batch_size=8,
                          progress_bar=False)[shift:, shift:, shift:]
    correction = blended - volume
    change = np.sqrt(np.mean((moved - blended) ** 2)) / np.sqrt(np.mean(correction**2))
    naive_moved = naive_tiled(predict_fn, padded, args.cube, args.crop)[shift:, shift:, shift:]
    naive_change = np.sqrt(np.mean((naive_moved - naive) ** 2)) / np.sqrt(np.mean((naive - volume) ** 2))
    print(f"tile grid shifted by {shift}: rms change / rms correction = {change:.4f} blended, {naive_change:.4f} naive")


if __name__ == "__main__":
    main()
