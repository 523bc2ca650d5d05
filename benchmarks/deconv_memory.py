"""Peak memory and wall time of chunked CTF deconvolution on a large tomogram.

Makes a float32 tomogram (default 600 x 2048 x 2048 = 10 GB; smaller with --shape), a one-row
tomograms.star, and runs ``isonet deconv --chunk-size`` on it in a child process; prints the
child's peak resident set size (the kernel's rusage of that child) and wall time. With
--compare-whole it also runs whole-tomogram mode the same way and prints the correlation of the
two results (computed slab by slab here, outside the measured children).

    python benchmarks/deconv_memory.py --shape 300,1024,1024
    python benchmarks/deconv_memory.py                      # full size: needs ~21 GB of disk

Target: the full-size tomogram deconvolves in chunked mode with < 6 GB peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from isonet_steps.io.mrc import new_memmap, open_memmap, release_pages  # noqa: E402


def make_tomogram(path: Path, shape: tuple[int, int, int], seed: int = 0) -> None:
    """Noise plus dark blobs and a slow gradient along Z, written slab by slab (bounded memory)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    step = max(1, (1 << 25) // (ny * nx))
    yy, xx = np.ogrid[:ny, :nx]
    blobs = ((np.sin(yy / 9.0) * np.cos(xx / 13.0)) > 0.8).astype(np.float32)  # fixed dark pattern
    with new_memmap(path, shape, 10.0) as out:
        for z0 in range(0, nz, step):
            z1 = min(z0 + step, nz)
            slab = rng.standard_normal((z1 - z0, ny, nx), dtype=np.float32)
            slab -= 2.0 * blobs
            slab += np.linspace(-0.5, 0.5, nz, dtype=np.float32)[z0:z1, None, None]
            out[z0:z1] = slab
            release_pages(out)


def write_star(path: Path, tomogram: Path) -> None:
    path.write_text(
        "\ndata_\n\nloop_\n_rlnIndex #1\n_rlnMicrographName #2\n_rlnPixelSize #3\n_rlnDefocus #4\n"
        f"1\t{tomogram}\t10.0\t30000.0\n"
    )


def run_child(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """Run ``isonet deconv ARGS``; return (peak RSS in GiB, wall seconds, exit status)."""
    cmd = [sys.executable, "-c", "from isonet_steps.cli.deconv import command; command()", *args]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - start
    return usage.ru_maxrss / 2**20, wall, proc.returncode  # ru_maxrss is in KiB on Linux


def correlation(a_path: Path, b_path: Path) -> float:
    with open_memmap(a_path) as a, open_memmap(b_path) as b:
        sums = np.zeros(5)
        step = max(1, (1 << 24) // a.data[0].size)
        for z0 in range(0, a.data.shape[0], step):
            x = np.asarray(a.data[z0:z0 + step], dtype=np.float64)
            y = np.asarray(b.data[z0:z0 + step], dtype=np.float64)
            sums += [x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()]
            release_pages(a.data)
            release_pages(b.data)
        n = a.data.size
    sx, sy, sxx, syy, sxy = sums
    return float((sxy - sx * sy / n) / np.sqrt((sxx - sx * sx / n) * (syy - sy * sy / n)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="600,2048,2048", help="Z,Y,X voxels of the test tomogram")
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--overlap-rate", type=float, default=0.25)
    parser.add_argument("--ncpu", type=int, default=None, help="FFT threads (default: all cores)")
    parser.add_argument("--compare-whole", action="store_true", help="also run whole mode and correlate")
    parser.add_argument("--workdir", default=None, help="folder for the files (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deconv_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        tomo = work / "tomograms" / "bench.rec.mrc"
        t0 = time.time()
        make_tomogram(tomo, shape)
        gib = np.prod(shape) * 4 / 2**30
        print(f"made {tomo} {shape} ({gib:.2f} GiB) in {time.time() - t0:.0f} s", flush=True)
        star = work / "tomograms.star"
        write_star(star, tomo)
        common = [str(star), "--output-star", str(work / "out.star"), "--log-level", "debug"]
        if args.ncpu:
            common += ["--ncpu", str(args.ncpu)]
        rss, wall, rc = run_child(common + ["--chunk-size", str(args.chunk_size), "--overlap-rate",
                                            str(args.overlap_rate), "--deconv-folder", "chunked"], work)
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        print(f"chunked (chunk {args.chunk_size}, overlap {args.overlap_rate}): exit {rc}, "
              f"peak RSS {rss:.2f} GiB (getrusage children: {children:.2f} GiB), wall {wall:.0f} s", flush=True)
        if rc != 0:
            return rc
        if args.compare_whole:
            rss_w, wall_w, rc_w = run_child(common + ["--deconv-folder", "whole"], work)
            print(f"whole: exit {rc_w}, peak RSS {rss_w:.2f} GiB, wall {wall_w:.0f} s", flush=True)
            if rc_w == 0:
                r = correlation(work / "chunked" / tomo.name, work / "whole" / tomo.name)
                print(f"correlation chunked vs whole: {r:.6f}")
        return 0
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
