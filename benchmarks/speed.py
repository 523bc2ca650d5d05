"""Network speed: tiled tomogram prediction and training steps, on the CPU and (with --gpu) a GPU.

Run from the repository root:

    python benchmarks/speed.py            # CPU: filter base 16, 500×500×200 tomogram, training steps
    python benchmarks/speed.py --quick    # smaller, fewer repeats (about a minute on 2 cores)
    python benchmarks/speed.py --gpu      # filter base 64 on a 1000×1000×300 tomogram (or "no GPU")
    KERAS_BACKEND=torch python benchmarks/speed.py --gpu --oom   # the same on PyTorch, and the
                                          # out-of-memory back-off on an oversized batch

Predict runs the network as ``isonet predict`` does: batch normalisation folded into the
convolutions, dropout removed, in float32 and in mixed precision (bfloat16 compute, which
``--precision auto`` picks on CPUs with AMX/AVX512-BF16 and GPUs of compute capability 8.0+), at
predict's default tiling (cube 96, crop 128: 2.4 network voxels per output voxel) and at IsoNet's
cube 64 / crop 96 (the same 8-voxel margin and 16-voxel cross-fade, 3.4 network voxels per output voxel).

Prints one line per figure. "output voxels/s" counts tomogram voxels corrected per second, the
figure a user waits on; "network voxels/s" counts the crop³ tile voxels pushed through the
network (tiles overlap, so it is larger); GFLOP/s is the convolution arithmetic actually done.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def conv_flops_per_voxel(depth: int, filter_base: int, convs_per_depth: int = 3, kernel: int = 3) -> float:
    """Multiply-adds x2 of the U-Net per input voxel (convolutions only; BN and activations are small)."""
    k = kernel**3
    flops, cin = 0.0, 1
    for level in range(depth):
        f, scale = filter_base * 2**level, 8.0**-level
        for _ in range(convs_per_depth):
            flops += 2 * k * cin * f * scale
            cin = f
        flops += 2 * k * f * f * scale / 8  # stride-2 conv: outputs at the next level's size
    bottom = filter_base * 2**depth
    scale = 8.0**-depth
    for _ in range(convs_per_depth - 2):
        flops += 2 * k * cin * bottom * scale
        cin = bottom
    flops += 2 * k * cin * filter_base * 2 ** (depth - 1) * scale
    cin = filter_base * 2 ** (depth - 1)
    for level in reversed(range(depth)):
        f, scale = filter_base * 2**level, 8.0**-level
        flops += 2 * k * cin * f * scale / 8  # transposed conv: one kernel per input voxel (half size)
        cin = 2 * f
        for _ in range(convs_per_depth):
            flops += 2 * k * cin * f * scale
            cin = f
    return flops + 2 * cin


def bench_predict(filter_base, shape, cube, crop, batch_size, precision, repeats=1):
    import numpy as np

    from isonet_steps.network.inference import model_predict_fn, predict_tomogram
    from isonet_steps.network.tiles import plan_tiles
    from isonet_steps.network.unet import build_unet

    model = build_unet(filter_base=filter_base)
    fn = model_predict_fn(model, precision=precision)  # the inference network: BN folded, no dropout
    spent = {"network": 0.0}

    def timed(batch):
        start = time.perf_counter()
        out = fn(batch)
        spent["network"] += time.perf_counter() - start
        return out

    rng = np.random.default_rng(0)
    tomo = rng.normal(size=shape).astype(np.float32)
    warm = rng.normal(size=(batch_size, crop, crop, crop, 1)).astype(np.float32)
    fn(warm)  # trace / compile outside the timing
    plan = plan_tiles(shape, cube, crop)
    best = None
    for _ in range(repeats):
        spent["network"] = 0.0
        start, cpu = time.perf_counter(), time.process_time()
        predict_tomogram(timed, tomo, cube=cube, crop=crop, batch_size=batch_size, progress=False)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
        if best is None or total < best[0]:
            best = (total, spent["network"], cpu)
    total, network, cpu = best
    n_out = int(np.prod(shape))
    n_net = plan.count * crop**3
    gflops = n_net * conv_flops_per_voxel(3, filter_base) / network / 1e9
    print(
        f"predict fb{filter_base} {precision:7s} {'×'.join(map(str, shape[::-1]))} cube {cube} crop {crop} "
        f"batch {batch_size}: {plan.count} tiles, {total:.1f} s, {n_out / total / 1e6:.3f} M output voxels/s, "
        f"{n_net / network / 1e6:.2f} M network voxels/s, {gflops:.0f} GFLOP/s, "
        f"network {100 * network / total:.0f}% of the time, {cpu / total:.1f} cores busy",
        flush=True,
    )


def bench_train(filter_base, batch, side, jit, steps, precision="float32"):
    import keras
    import numpy as np

    from isonet_steps.network.devices import precision_policy
    from isonet_steps.network.layout import data_format_of, for_backend
    from isonet_steps.network.unet import build_unet, compile_unet

    with precision_policy(precision):  # laid out as refine trains it (channels-first on PyTorch)
        model = compile_unet(for_backend(build_unet(filter_base=filter_base)), 4e-4, jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, side, side, side, 1)).astype(np.float32)
    y = rng.normal(size=x.shape).astype(np.float32)
    start = time.perf_counter()
    model.train_on_batch(x, y)  # trace / compile
    first = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.train_on_batch(x, y)
    per_step = (time.perf_counter() - start) / steps
    busy = (time.process_time() - cpu) / (per_step * steps)
    print(
        f"train fb{filter_base} {precision:7s} batch {batch} of {side}³, jit_compile={model.jit_compile} "
        f"({keras.backend.backend()}, {data_format_of(model)}): {1 / per_step:.2f} steps/s "
        f"({per_step:.3f} s/step, first step {first:.1f} s, "
        f"{busy:.1f} cores busy; an IsoNet iteration, 10 epochs × 200 steps: {2000 * per_step / 60:.1f} min)",
        flush=True,
    )
    return per_step


def bench_oom_backoff(filter_base, precision, batch_size=64, crop=256, cube=224):
    """Predict with a batch far too large for the GPU: the batch must halve until it fits and the
    result must equal a one-tile-at-a-time prediction (the tiles are the same, only grouped differently).
    """
    import numpy as np

    from isonet_steps.network.inference import model_predict_fn, predict_tomogram
    from isonet_steps.network.unet import build_unet

    fn = model_predict_fn(build_unet(filter_base=filter_base), precision=precision)
    asked = []

    def recording(batch):
        asked.append(len(batch))
        return fn(batch)

    tomo = np.random.default_rng(1).normal(size=(192, 448, 448)).astype(np.float32)
    start = time.perf_counter()
    out = predict_tomogram(recording, tomo, cube=cube, crop=crop, batch_size=batch_size, progress=False)
    took = time.perf_counter() - start
    ref = predict_tomogram(fn, tomo, cube=cube, crop=crop, batch_size=1, progress=False)
    tried = sorted(set(asked), reverse=True)
    diff = float(np.max(np.abs(out - ref)) / (np.std(ref) + 1e-12))
    print(f"out-of-memory back-off fb{filter_base} {precision}: asked {batch_size} tiles of {crop}³ per call; "
          f"tried {tried}, worked at {asked[-1]} ({took:.1f} s in all); largest difference from one-tile calls "
          f"{diff:.1e} of the output's spread", flush=True)


def describe_gpus():
    """Name, memory and compute capability of each GPU the keras backend sees."""
    import keras

    if keras.backend.backend() == "torch":
        import torch

        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            print(f"GPU {i}: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
                  f"{props.major}.{props.minor}, {props.multi_processor_count} multiprocessors; "
                  f"torch {torch.__version__}, "
                  f"cuDNN {torch.backends.cudnn.version()}, TF32 convolutions {torch.backends.cudnn.allow_tf32}",
                  flush=True)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            print(f"{gpu.name}: {details.get('device_name')}, compute capability {details.get('compute_capability')}; "
                  f"tensorflow {tf.__version__}", flush=True)


def bench_pairs(batch, crop, cube, noise_level, repeats):
    """Pairs per second made by the data pipeline (rotation, wedge filter, crop, noise) on one thread."""
    import numpy as np

    from isonet_steps.network.pairs import make_batch

    rng = np.random.default_rng(0)
    merged = rng.normal(size=(batch * 2, crop, crop, crop)).astype(np.float32)
    tilts = np.array([[-60.0, 60.0]] * len(merged))
    pairs = np.stack([np.arange(batch), np.arange(batch) % 20], axis=1)
    make_batch(merged, tilts, pairs, cube, noise_level, "noFilter", rng)
    start = time.perf_counter()
    for _ in range(repeats):
        make_batch(merged, tilts, pairs, cube, noise_level, "noFilter", rng)
    per_batch = (time.perf_counter() - start) / repeats
    print(f"pairs {batch}×{cube}³ (from {crop}³, noise {noise_level}): {batch / per_batch:.0f} pairs/s "
          f"({per_batch * 1000:.0f} ms per batch, one background thread)", flush=True)
    return per_batch


def bench_data_wait(filter_base, batch, crop, cube, steps, precision):
    """Train as refine does (batches made ahead in a background thread) and time what the trainer
    spends waiting for data: the network must never wait.
    """
    import numpy as np

    from isonet_steps.network.cubes import Cubes
    from isonet_steps.network.devices import precision_policy
    from isonet_steps.network.layout import for_backend
    from isonet_steps.network.pairs import BatchStream, PairPlan
    from isonet_steps.network.unet import build_unet, compile_unet

    with precision_policy(precision):
        model = compile_unet(for_backend(build_unet(filter_base=filter_base)), 4e-4, jit_compile=False)
    rng = np.random.default_rng(0)
    merged = rng.normal(size=(24, crop, crop, crop)).astype(np.float32)
    tilts = np.array([[-60.0, 60.0]] * len(merged))
    plan = PairPlan.make(np.arange(len(merged)), batch, steps + 1, rng)
    stream = BatchStream(Cubes(merged), tilts, plan, cube, 0.1, "noFilter", seed=0)
    try:
        model.train_on_batch(*stream.get(0, 0))  # trace outside the timing
        waited, start = 0.0, time.perf_counter()
        for step in range(1, steps + 1):
            t = time.perf_counter()
            x, y = stream.get(0, step)
            waited += time.perf_counter() - t
            model.train_on_batch(x, y)
        total = time.perf_counter() - start
    finally:
        stream.close()
    print(f"refine loop fb{filter_base} {precision} batch {batch} of {cube}³, noise on: {total / steps:.2f} s/step, "
          f"waiting for data {100 * waited / total:.1f}% of the time ({waited / steps * 1000:.0f} ms/step)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller volumes and fewer steps")
    parser.add_argument("--gpu", action="store_true", help="also benchmark filter base 64 on a GPU")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    parser.add_argument("--precision", choices=["float32", "mixed", "both"], default="both")
    parser.add_argument("--skip-train", action="store_true", help="no training figures")
    parser.add_argument("--shape", default=None, help="CPU predict tomogram Z,Y,X [200,500,500; --quick 64,128,128]")
    parser.add_argument("--default-tiling-only", action="store_true", help="predict at cube 96 / crop 128 only")
    parser.add_argument("--jit", action="store_true",
                        help="GPU training compiled (XLA on TensorFlow, torch.compile on PyTorch); default eager")
    parser.add_argument("--oom", action="store_true",
                        help="GPU: also predict with a batch too large for the card (the out-of-memory back-off)")
    parser.add_argument("--xla-cpu", action="store_true",
                        help="also time CPU training with jit_compile=True (XLA's CPU Conv3D is >10x slower)")
    args = parser.parse_args()
    precisions = ["float32", "mixed"] if args.precision == "both" else [args.precision]

    from isonet_steps.network import devices

    devices.configure(None if args.gpu else "cpu", threads=args.threads)
    import keras

    from isonet_steps.network import cpu

    print(cpu.describe(), flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"keras {keras.__version__} on {keras.backend.backend()}, {devices.cpu_count()} CPU cores, "
          f"{os.environ.get('TF_NUM_INTRAOP_THREADS', 'default')} intra-op threads, load average {load:.1f} "
          f"(figures are lower when other work shares the cores)", flush=True)

    # === CPU: filter base 16 ===
    if not args.gpu:
        shape = (64, 128, 128) if args.quick else (200, 500, 500)
        if args.shape:
            shape = tuple(int(v) for v in args.shape.split(","))
        for precision in precisions:
            bench_predict(16, shape, 96, 128, 2, precision)  # predict's default tiling
            if not args.quick and not args.default_tiling_only:
                bench_predict(16, shape, 64, 96, 4, precision)  # IsoNet's
        if not args.skip_train:
            steps = 2 if args.quick else 5
            for jit in (False, True) if args.xla_cpu else (False,):
                bench_train(16, 8, 32, jit, steps)
                bench_train(16, 4, 64, jit, steps)
            bench_pairs(8, 48, 32, 0.1, 3 if args.quick else 10)
            bench_pairs(4, 96, 64, 0.1, 2 if args.quick else 5)
            for precision in precisions:
                bench_data_wait(16, 8, 48, 32, 5 if args.quick else 20, precision)
        return

    # === GPU: filter base 64 ===
    n_gpus = devices.visible_gpus()
    if n_gpus == 0:
        print("no GPU", flush=True)
        return
    describe_gpus()
    shape = (150, 500, 500) if args.quick else (300, 1000, 1000)
    if args.shape:
        shape = tuple(int(v) for v in args.shape.split(","))
    for precision in precisions:
        bench_predict(64, shape, 96, 128, 4 * n_gpus, precision)  # predict's default tiling
        if not args.default_tiling_only:
            bench_predict(64, shape, 64, 96, 4 * n_gpus, precision)  # IsoNet's
    if not args.skip_train:
        steps = 5 if args.quick else 10
        per_batch = bench_pairs(4, 96, 64, 0.1, 5)
        print(f"  (a GPU training step must take longer than {per_batch:.2f} s for one data thread to keep up)")
        bench_pairs(4, 128, 96, 0.1, 3)
        for precision in precisions:
            for side in (64, 96):
                bench_train(64, 4, side, args.jit, steps, precision)
    if args.oom:
        bench_oom_backoff(64, precisions[-1])


if __name__ == "__main__":
    main()
