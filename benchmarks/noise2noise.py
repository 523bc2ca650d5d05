#!/usr/bin/env python3
"""Noise2noise on even/odd halves against IsoNet's single-tomogram training, at equal training steps.

Protocol (defaults): a phantom 64×160×160 at 10 Å, ±60°, SNR 0.5, simulated with two half tomograms
(``make_phantom(halves=True)``: the same object and tilt series, each half from half the dose, so
independent noise of twice the variance; the full tomogram is exactly their mean). A mask of the
full tomogram places 120 boxes (crop 48, cube 32); the same boxes are cut from the full tomogram and
from each half. Then, with the same network, seed and number of training steps (10 iterations ×
4 epochs × 30 steps, batch 8, filter base 16):

(a) IsoNet: refine on the full tomogram's boxes, noise 0.05, 0.1 added from iterations 5, 8;
(b) noise2noise: refine on the halves' boxes (half 1 → half 2 and back, no added noise).

Each model corrects the full tomogram (predict's default tiles, 96/128); (b) also corrects each half,
and the two corrected halves are averaged (as cryoCARE and DeepDeWedge predict). Prints, against the
ground truth, the Fourier correlation inside the missing wedge and in the measured region, the
real-space correlation and the Z/X elongation of the gold beads, the wall times and the CPU.

    python benchmarks/noise2noise.py [--quick] [--seed 0] [--json out.json]
        [--iterations N --epochs N --steps N --noise-start-iter A,B]

``--quick`` (3 iterations × 2 epochs × 20 steps, noise from iterations 2, 3) is a smoke run that
takes a few minutes on two cores, not the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("ISONET_NO_PROGRESS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isonet_steps.core.extract import crop_box, pick_centres  # noqa: E402
from isonet_steps.core.mask import make_mask  # noqa: E402
from isonet_steps.core.metrics import quality_report  # noqa: E402
from isonet_steps.core.phantom import make_phantom  # noqa: E402
from isonet_steps.core.wedge import Wedge  # noqa: E402
from isonet_steps.io.checkpoint import RefineStore  # noqa: E402
from isonet_steps.io.refine_state import RefineState  # noqa: E402
from isonet_steps.network.refine import RefineData, RefineSettings, refine  # noqa: E402

CUBE, CROP = 32, 48
TILE_CUBE, TILE_CROP = 96, 128


def boxes(volume: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.stack([crop_box(volume, c, CROP) for c in centres])


def correct(model_path: Path, volumes: list[np.ndarray], precision: str) -> list[np.ndarray]:
    from isonet_steps.network.inference import model_predict_fn, predict_tomogram
    from isonet_steps.network.unet import load_model

    fn = model_predict_fn(load_model(model_path), precision=precision)
    return [predict_tomogram(fn, v, cube=TILE_CUBE, crop=TILE_CROP, batch_size=2, progress=False) for v in volumes]


def train(name: str, data: RefineData, settings: RefineSettings, work: Path, times: dict) -> tuple[Path, RefineState]:
    print(f"training {name} ...", flush=True)
    start = time.perf_counter()
    store = RefineStore(work / name)
    state = refine(data, settings, store, resume=False)
    times[f"refine {name}"] = time.perf_counter() - start
    return store.final_model_path, state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="3 iterations × 2 epochs × 20 steps (a smoke run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", default="64,160,160")
    ap.add_argument("--snr", type=float, default=0.5)
    ap.add_argument("--subtomos", type=int, default=120)
    ap.add_argument("--precision", choices=["auto", "float32", "mixed"], default="auto")
    ap.add_argument("--iterations", type=int, default=None, help="override the protocol's (or --quick's) iterations")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="steps per epoch")
    ap.add_argument("--noise-start-iter", default=None, help="IsoNet's run: two iterations, e.g. 3,5")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="isonet-n2n-"))
    work.mkdir(parents=True, exist_ok=True)
    iterations, epochs, steps, noise_start = (3, 2, 20, (2, 3)) if args.quick else (10, 4, 30, (5, 8))
    iterations, epochs, steps = args.iterations or iterations, args.epochs or epochs, args.steps or steps
    if args.noise_start_iter:
        noise_start = tuple(int(v) for v in args.noise_start_iter.split(","))
    times: dict[str, float] = {}

    start = time.perf_counter()
    shape = tuple(int(s) for s in args.shape.split(","))
    ph = make_phantom(shape, tilt_min=-60, tilt_max=60, snr=args.snr, seed=args.seed, halves=True)
    assert ph.half1 is not None and ph.half2 is not None
    mask = make_mask(ph.tomogram)
    centres = pick_centres(mask, shape, CROP, args.subtomos, np.random.default_rng(args.seed))
    tilts = np.array([[-60.0, 60.0]] * len(centres))
    names = [f"box{i:03d}" for i in range(len(centres))]
    times["phantom, mask, boxes"] = time.perf_counter() - start

    common = dict(iterations=iterations, epochs=epochs, steps_per_epoch=steps, batch_size=8, filter_base=16,
                  seed=args.seed, precision=args.precision)
    single = RefineSettings(**common, noise_level=(0.05, 0.1), noise_start_iter=noise_start)
    n2n = RefineSettings(**common, noise2noise=True)
    full_data = RefineData(boxes(ph.tomogram, centres), tilts, names, CUBE)
    half_data = RefineData(boxes(ph.half1, centres), tilts, names, CUBE, second_half=boxes(ph.half2, centres),
                           second_names=[f"{n}_half2" for n in names])
    single_model, single_state = train("isonet_single", full_data, single, work, times)
    n2n_model, n2n_state = train("noise2noise", half_data, n2n, work, times)

    start = time.perf_counter()
    (single_full,) = correct(single_model, [ph.tomogram], single_state.precision or args.precision)
    volumes = [ph.tomogram, ph.half1, ph.half2]
    n2n_full, n2n_h1, n2n_h2 = correct(n2n_model, volumes, n2n_state.precision or args.precision)
    times["predict (4 tomograms)"] = time.perf_counter() - start

    columns = {
        "raw full": ph.tomogram,
        "raw half 1": ph.half1,
        "IsoNet full": single_full,
        "n2n full": n2n_full,
        "n2n halves avg": (n2n_h1 + n2n_h2) / 2.0,
    }
    figures = {k: quality_report(v, ph.ground_truth, ph.labels, Wedge.from_range(-60, 60)) for k, v in columns.items()}
    report(args, work, figures, times, {"isonet_single": single_state, "noise2noise": n2n_state})


def report(args, work: Path, figures: dict, times: dict, states: dict) -> None:
    from isonet_steps.network import cpu

    print(f"\nworkdir: {work}")
    print(cpu.describe())
    for name, state in states.items():
        steps = sum(r.steps_per_epoch * len(r.loss) for r in state.iterations)
        last = state.iterations[-1]
        print(f"{name}: {steps} training steps of batch {last.batch_size}, precision {state.precision}, "
              f"last loss {last.loss[-1]:.4f}, validation loss {last.val_loss[-1]:.4f}")
    keys = list(figures)
    print(f"\n{'figure':30s}" + "".join(f"{k:>16s}" for k in keys))
    for metric in figures[keys[0]]:
        print(f"{metric:30s}" + "".join(f"{figures[k][metric]:16.3f}" for k in keys))
    print("\nwall time (s):")
    for step, seconds in times.items():
        print(f"  {step:24s} {seconds:8.1f}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "times_s": times}, indent=2))


if __name__ == "__main__":
    main()
