#!/usr/bin/env python3
"""Time of `isonet demo` as a whole and of each of its steps (target: under 10 minutes on 2 cores),
the refine iterations its time budget allowed, and its correction against the truth (target: the
missing-wedge Fourier correlation at least 0.2 above the raw tomogram's), with the CPU's features.

    python benchmarks/demo_time.py [--outdir DIR] [--quick] [--time-budget S] [--emulate-avx2]

On an AVX-512 machine, ``--emulate-avx2`` (``ONEDNN_MAX_CPU_ISA=AVX2``) emulates an AVX2-only CPU's
kernels (``TF_ENABLE_ONEDNN_OPTS=0`` its former Eigen ones); ``auto`` precision is then float32, as on
that CPU. Besides wall time it prints the demo's CPU seconds (its processes' own accounting), which
other work sharing the cores hardly changes: CPU seconds over the cores is the time the demo would
take with the cores to itself.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outdir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--time-budget", default=None, help="the demo's --time-budget (seconds of refine)")
    ap.add_argument("--emulate-avx2", action="store_true",
                    help="ONEDNN_MAX_CPU_ISA=AVX2: an AVX2-only CPU's oneDNN kernels")
    args = ap.parse_args()
    if args.emulate_avx2:
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from isonet_steps.network import cpu

    print(cpu.describe(), flush=True)
    out = args.outdir or Path(tempfile.mkdtemp(prefix="isonet-demo-")) / "demo"
    cmd = [sys.executable, "-m", "isonet_steps", "demo", "--outdir", str(out)] + (["--quick"] if args.quick else []) \
        + (["--time-budget", args.time_budget] if args.time_budget else [])
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env={**os.environ, "ISONET_NO_PROGRESS": "1"})
    total = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(f"\n{'step':24s} {'seconds':>8s}")
    from isonet_steps.io.run_layout import RunLayout

    records = RunLayout(out).records.rglob("*.json")  # a tomogram's steps: <step>/<tomogram>.json
    for record in sorted(records, key=lambda p: p.stat().st_mtime_ns):  # written as each step ends: run order
        r = json.loads(record.read_text())
        print(f"{r['step']:24s} {r['seconds']:8.1f}")
    print(f"{'total (demo)':24s} {total:8.1f}   ({os.cpu_count()} CPUs; report: {out / 'report.html'})")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"CPU seconds      {cpu_s:8.1f}   (/ {cores} cores = {cpu_s / cores:.1f} s with the cores to itself; "
          f"load average at the end {os.getloadavg()[0]:.1f})")
    from isonet_steps.io.errors import InputError
    from isonet_steps.io.refine_state import load_refine_state

    for path in sorted(out.glob("**/refine_state.json")):
        try:
            iterations = load_refine_state(path).iterations
        except InputError:
            continue
        if iterations:
            print("refine iteration seconds: " + " ".join(f"{r.seconds:.0f}" for r in iterations))
    plan = out / ".isonet" / "demo_plan.json"
    if plan.exists():
        p = json.loads(plan.read_text())
        step_s = p["seconds_per_step"] or 0
        print(f"refine iterations: {p['iterations']} (budget {p['budget_s']:g} s, timed step {step_s:.2f} s)")
    _quality(out)


def _quality(out: Path) -> None:
    from isonet_steps.core.metrics import quality_report
    from isonet_steps.core.wedge import Wedge
    from isonet_steps.io.mrc import read_volume
    from isonet_steps.io.star import read_tomogram_star, resolve_path

    star = out / "tomograms_corrected.star"
    table = read_tomogram_star(star)
    corrected = resolve_path(table["rlnCorrectedTomoName"].iloc[0], star, "rlnCorrectedTomoName")
    truth = read_volume(out / "data" / "ground_truth.mrc", "truth").data
    labels = read_volume(out / "data" / "labels.mrc", "labels", allow_constant=True).data
    raw = quality_report(read_volume(out / "data" / "tomo.mrc", "raw").data, truth, labels, Wedge.from_range(-60, 60))
    fixed = quality_report(read_volume(corrected, "corrected").data, truth, labels, Wedge.from_range(-60, 60))
    for key in raw:
        print(f"{key:28s} raw {raw[key]:.3f}  corrected {fixed[key]:.3f}")
    gain = fixed["fourier_corr_missing_wedge"] - raw["fourier_corr_missing_wedge"]
    print(f"missing-wedge gain {gain:.3f} (target >= 0.2)")


if __name__ == "__main__":
    main()
