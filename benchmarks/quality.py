#!/usr/bin/env python3
"""Quality and wall time of the whole method on a phantom with known ground truth (issue: refine & predict).

Protocol (defaults): make-phantom 64×160×160 at 10 Å, ±60°, SNR 0.5 → prepare-star → make-mask →
extract (120 cubes of 32) → refine (10 iterations, 4 epochs, 30 steps, batch 8, filter base 16,
noise 0.05,0.1 from iterations 5,8) → predict. Prints, against the ground truth, the Fourier
correlation inside the missing wedge and in the measured region, the real-space correlation and the
Z/X elongation of the gold beads, for the raw and the corrected tomogram, and each step's wall time.

    python benchmarks/quality.py [--workdir DIR] [--quick] [--seed 0] [--json out.json]
        [--early-stop-patience N] [--iterations I --epochs E --steps-per-epoch S --noise-start-iter 5,8]
        [--batch-size B] [--learning-rate 4e-4] [--fill-relaxation 1] [--snr 0.5] [--score-iterations] [--fast]
        [--emulate-avx2]

``--fast`` trains on the fast schedule users get from ``conf/fast.yaml`` (its iterations, epochs, steps,
batch and noise), read from that file, so the figures are the shipped schedule's; other flags still override.
``--score-iterations`` predicts with every iteration's saved model too and scores it beside refine's time
up to that iteration: how soon the quality arrives, and how much it moves from iteration to iteration.
``--emulate-avx2`` holds oneDNN to its AVX2 kernels (``ONEDNN_MAX_CPU_ISA=AVX2``) in every step: on an
AVX-512 machine, the kernels (and, with ``--precision auto``, the float32 arithmetic) of an AVX2-only CPU.

Every step runs as its own process (``python -m isonet_steps <step>``), as a user would run it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isonet_steps.core.metrics import quality_report  # noqa: E402
from isonet_steps.core.wedge import Wedge  # noqa: E402
from isonet_steps.workflow.params import read_params_file  # noqa: E402

WEDGE = Wedge.from_range(-60, 60)  # the phantom's tilt range (make-phantom below)


def run(step: str, *args: str, cwd: Path, times: dict) -> None:
    cmd = [sys.executable, "-m", "isonet_steps", step, *map(str, args)]
    print("$", " ".join(cmd[2:]), flush=True)
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=cwd, check=True, env={**__import__("os").environ, "ISONET_NO_PROGRESS": "1"})
    times[step] = times.get(step, 0.0) + time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU seconds: steadier than wall time on a shared machine
    times[f"{step} cpu"] = times.get(f"{step} cpu", 0.0) + after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime


def fast_schedule() -> dict:
    """conf/fast.yaml as this script's defaults (its refine schedule under the flags' names)."""
    values = read_params_file(ROOT / "conf" / "fast.yaml")
    listed = {name: ",".join(f"{v:g}" for v in values.pop(name)) for name in ("noise_level", "noise_start_iter")}
    return {**values, **listed}


def read(path: Path) -> np.ndarray:
    with mrcfile.open(path, permissive=True) as m:
        return np.asarray(m.data, dtype=np.float32)


def score_iterations(work: Path, state, refine_wall: float, truth: np.ndarray, labels: np.ndarray,
                     precision: str) -> dict:
    """Each iteration's model predicted and scored: how quality grows with refine's time (which model to keep).

    The time so far is refine's start-up (its wall time less its iterations') plus the iterations up to that one.
    """
    print("\nafter iteration   refine s so far   " + " / ".join(["wedge FC", "measured FC", "real-space", "bead Z/X"]))
    elapsed = refine_wall - sum(record.seconds for record in state.iterations)
    scores, scratch = {}, {}
    for record in state.iterations:
        elapsed += record.seconds
        out = f"corrected_it{record.iteration:02d}"
        run("predict", "tomograms.star", f"results/model_iter{record.iteration:02d}.keras", "--output-dir", out,
            "--precision", precision, cwd=work, times=scratch)
        report = quality_report(read(work / out / "phantom_corrected.mrc"), truth, labels, WEDGE)
        scores[record.iteration] = {"refine_seconds": round(elapsed, 1), **report}
        print(f"{record.iteration:15d} {elapsed:17.0f}   " + " / ".join(f"{v:.3f}" for v in report.values()))
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="3 iterations of 2 epochs (a smoke run, not the protocol)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", default="64,160,160")
    ap.add_argument("--snr", type=float, default=0.5)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--precision", choices=["auto", "float32", "mixed"], default="auto",
                    help="refine and predict --precision (auto: mixed where the hardware has bfloat16 units)")
    ap.add_argument("--early-stop-patience", type=int, default=0,
                    help="refine --early-stop-patience (0: every epoch, as the protocol)")
    ap.add_argument("--iterations", type=int, default=None, help="override the protocol's (or --quick's) iterations")
    ap.add_argument("--epochs", type=int, default=None, help="override the epochs per iteration")
    ap.add_argument("--steps-per-epoch", type=int, default=30)
    ap.add_argument("--noise-start-iter", default=None, help="override the iterations where the noise levels start")
    ap.add_argument("--noise-level", default="0.05,0.1", help="refine --noise-level (the protocol's 0.05,0.1)")
    ap.add_argument("--batch-size", type=int, default=8, help="refine --batch-size (the protocol's 8)")
    ap.add_argument("--learning-rate", type=float, default=4e-4, help="refine --learning-rate (IsoNet's 4e-4)")
    ap.add_argument("--fill-relaxation", type=float, default=1.0, help="refine --fill-relaxation (1: IsoNet's fill)")
    ap.add_argument("--score-iterations", action="store_true",
                    help="also predict with every iteration's saved model and score it, beside refine's seconds so far")
    ap.add_argument("--fast", action="store_true", help="the schedule of conf/fast.yaml (flags given override it)")
    ap.add_argument("--emulate-avx2", action="store_true",
                    help="ONEDNN_MAX_CPU_ISA=AVX2 for every step: an AVX2-only CPU's kernels (auto precision: float32)")
    if ap.parse_known_args()[0].fast:
        ap.set_defaults(**fast_schedule())
    args = ap.parse_args()
    if args.emulate_avx2:
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"  # the steps run as subprocesses and inherit it
    work = args.workdir or Path(tempfile.mkdtemp(prefix="isonet-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    iterations, epochs, noise_start = (3, 2, "2,3") if args.quick else (10, 4, "5,8")
    iterations, epochs = args.iterations or iterations, args.epochs or epochs
    noise_start = args.noise_start_iter or noise_start
    times: dict[str, float] = {}

    run("make-phantom", "phantom", "--shape", args.shape, "--tilt-min", -60, "--tilt-max", 60,
        "--snr", args.snr, "--seed", args.seed, "--pixel-size", 10, cwd=work, times=times)
    (work / "tomos").mkdir(exist_ok=True)
    link = work / "tomos" / "phantom.mrc"
    if not link.exists():
        link.symlink_to(work / "phantom" / "tomo.mrc")
    run("prepare-star", "tomos", "-o", "tomograms.star", "--pixel-size", 10, "--number-subtomos", 120,
        cwd=work, times=times)
    run("make-mask", "tomograms.star", "--mask-folder", "mask", cwd=work, times=times)
    run("extract", "tomograms.star", "--subtomo-folder", "subtomo", "--subtomo-star", "subtomo.star",
        "--cube-size", 32, "--seed", args.seed, cwd=work, times=times)
    run("refine", "subtomo.star", "--result-dir", "results", "--iterations", iterations, "--epochs", epochs,
        "--early-stop-patience", args.early_stop_patience, "--steps-per-epoch", args.steps_per_epoch,
        "--batch-size", args.batch_size, "--learning-rate", args.learning_rate,
        "--fill-relaxation", args.fill_relaxation,
        "--filter-base", 16, "--noise-level", args.noise_level,
        "--noise-start-iter", noise_start, "--seed", args.seed, "--precision", args.precision, "--no-continue",
        cwd=work, times=times)
    run("predict", "tomograms.star", "results/model_final.keras", "--output-dir", "corrected",
        "--precision", args.precision, cwd=work, times=times)

    truth = read(work / "phantom" / "ground_truth.mrc")
    labels = read(work / "phantom" / "labels.mrc").astype(np.int16)
    raw = read(work / "phantom" / "tomo.mrc")
    corrected = read(work / "corrected" / "phantom_corrected.mrc")
    figures = {"raw": quality_report(raw, truth, labels, WEDGE),
               "corrected": quality_report(corrected, truth, labels, WEDGE)}
    from isonet_steps.io.refine_state import load_refine_state

    state = load_refine_state(work / "results" / "refine_state.json")
    refine_steps = sum(r.steps_per_epoch * len(r.loss) for r in state.iterations)
    planned_steps = sum(r.steps_per_epoch * epochs for r in state.iterations)
    trained_epochs = [len(r.loss) for r in state.iterations]

    print(f"\nworkdir: {work}")
    from isonet_steps.network import cpu

    print(cpu.describe())
    print(f"{'figure':34s} {'raw':>10s} {'corrected':>10s}")
    for key in figures["raw"]:
        print(f"{key:34s} {figures['raw'][key]:10.3f} {figures['corrected'][key]:10.3f}")
    print("\nwall time per step (s):")
    for step, seconds in times.items():
        print(f"  {step:14s} {seconds:8.1f}")
    print(f"  refine: {refine_steps} training steps, {times['refine'] / max(refine_steps, 1):.2f} s per step overall")
    print(f"  precision: {state.precision} (asked: {args.precision})")
    print(f"  early-stop patience {args.early_stop_patience}: epochs trained per iteration {trained_epochs} of "
          f"{epochs}; {refine_steps} of {planned_steps} planned steps ({1 - refine_steps / planned_steps:.0%} saved)")
    if args.score_iterations:
        figures["iterations"] = score_iterations(work, state, times["refine"], truth, labels, args.precision)
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "times_s": times, "refine_steps": refine_steps,
                                         "planned_steps": planned_steps, "epochs_trained": trained_epochs,
                                         "early_stop_patience": args.early_stop_patience}, indent=2))


if __name__ == "__main__":
    main()
