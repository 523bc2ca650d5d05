#!/usr/bin/env python3
"""What the per-tomogram scatter gives a cluster: the Nextflow pipeline on N small phantoms, for real.

    python benchmarks/scaling.py [--tomograms 8] [--halves] [--workdir DIR]

Runs ``nextflow run main.nf -profile test`` on the local executor over a folder of N phantoms
(different seeds), then reads the trace and prints, per step, the number of tasks and the sum of
their run times; the sum of all task times (what one machine doing one task at a time spends);
the critical path, the longest chain of dependent tasks: prepare, the slowest tomogram's
deconv + mask + extract, the subtomogram gather, the slower half's refine chain, the slowest
predict (+ FSC), the final gather and the report; and their ratio, the speed-up that a cluster
with a node free for every ready task would give. Nextflow 24.10.8 (tests/install_tools.sh) and
this checkout's package must be installed; the CPU's features are printed first.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PER_TOMOGRAM = ("ISONET_DECONV", "ISONET_MAKE_MASK", "ISONET_EXTRACT")
AFTER_REFINE = ("ISONET_PREDICT", "ISONET_PREDICT_HALF1", "ISONET_PREDICT_HALF2", "ISONET_FSC")


def seconds(text: str) -> float:
    """A trace duration ("1m 3s", "850ms") in seconds."""
    total = 0.0
    for part in text.split():
        unit = part.lstrip("0123456789.")
        total += float(part[: len(part) - len(unit)]) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


def critical_path(rows: list[dict]) -> float:
    """The longest chain of dependent tasks, from the pipeline's shape (per tomogram, gathers, recursions)."""
    by_step: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_step[row["process"].split(":")[-1]].append(row)

    def one(step: str) -> float:
        return max((seconds(r["realtime"]) for r in by_step.get(step, [])), default=0.0)

    def per_tomogram(steps: tuple[str, ...]) -> float:
        chains: dict[str, float] = defaultdict(float)
        for step in steps:
            for r in by_step.get(step, []):
                chains[r["tag"]] += seconds(r["realtime"])
        return max(chains.values(), default=0.0)

    refine: dict[str, float] = defaultdict(float)  # one chain per recursion (per half)
    for row in rows:
        if "REFINE" in row["process"]:
            refine[row["process"].split(":")[1]] += seconds(row["realtime"])
    predict = max((sum(seconds(r["realtime"]) for s in AFTER_REFINE for r in by_step.get(s, []) if r["tag"] == tag)
                   for tag in {r["tag"] for s in AFTER_REFINE for r in by_step.get(s, [])}), default=0.0)
    return (one("ISONET_MAKE_PHANTOM") + one("ISONET_PREPARE_STAR") + per_tomogram(PER_TOMOGRAM)
            + one("ISONET_MERGE_SUBTOMOS") + max(refine.values(), default=0.0) + predict
            + one("ISONET_MERGE_CORRECTED") + one("ISONET_REPORT"))


def make_phantoms(folder: Path, count: int) -> None:
    from isonet_steps.core.phantom import make_phantom
    from isonet_steps.io.mrc import write_volume

    for i in range(count):
        phantom = make_phantom((64, 96, 96), seed=i, pixel_size=10.0)
        write_volume(folder / f"TS_{i + 1:02d}.mrc", phantom.tomogram, 10.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tomograms", type=int, default=8)
    ap.add_argument("--halves", action="store_true", help="two half networks (the test profile's default)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from isonet_steps.network import cpu

    print(cpu.describe(), flush=True)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="isonet-scaling-"))
    data = work / "tomograms"
    data.mkdir(parents=True, exist_ok=True)
    make_phantoms(data, args.tomograms)
    out = work / "results"
    env = {**os.environ, "NXF_OFFLINE": "true", "NXF_ANSI_LOG": "false", "ISONET_NO_PROGRESS": "1"}
    subprocess.run(["nextflow", "run", str(ROOT / "main.nf"), "-profile", "test", "--phantom", "false",
                    "--input", str(data), "--outdir", str(out), "--halves", str(args.halves).lower(),
                    "--number_subtomos", "12"], cwd=work, env=env, check=True)
    with open(out / "pipeline_info" / "execution_trace.txt", newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["status"] == "COMPLETED"]
    steps: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        steps[row["process"].split(":")[-1]].append(seconds(row["realtime"]))
    print(f"\n{args.tomograms} tomograms of 64x96x96, halves {args.halves}, {os.cpu_count()} CPUs\n")
    print(f"{'step':26s} {'tasks':>5s} {'task seconds':>13s}")
    for step, times in sorted(steps.items(), key=lambda kv: -sum(kv[1])):
        print(f"{step:26s} {len(times):5d} {sum(times):13.1f}")
    total, path = sum(sum(t) for t in steps.values()), critical_path(rows)
    print(f"\nsum of task times  {total:8.1f} s  (one machine, one task at a time)")
    print(f"critical path      {path:8.1f} s  (enough nodes for every ready task)")
    print(f"speed-up           {total / path:8.2f} x")


if __name__ == "__main__":
    main()
