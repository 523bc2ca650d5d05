#!/usr/bin/env python3
"""Time of `isonet demo` as a whole and of each of its steps (target: under 10 minutes on 2 cores).

    python benchmarks/demo_time.py [--outdir DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outdir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    out = args.outdir or Path(tempfile.mkdtemp(prefix="isonet-demo-")) / "demo"
    cmd = [sys.executable, "-m", "isonet_steps", "demo", "--outdir", str(out)] + (["--quick"] if args.quick else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "ISONET_NO_PROGRESS": "1"})
    total = time.perf_counter() - t0
    print(f"\n{'step':16s} {'seconds':>8s}")
    for record in sorted((out / ".isonet" / "steps").glob("*.json"), key=lambda p: json.loads(p.read_text())["finished"]):
        r = json.loads(record.read_text())
        print(f"{r['step']:16s} {r['seconds']:8.1f}")
    print(f"{'total (demo)':16s} {total:8.1f}   ({os.cpu_count()} CPUs; report: {out / 'report.html'})")


if __name__ == "__main__":
    main()
