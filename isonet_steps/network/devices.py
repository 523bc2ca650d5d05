"""Which devices the network runs on, set up before TensorFlow (or PyTorch) is imported.

CUDA reads ``CUDA_VISIBLE_DEVICES`` and TensorFlow its thread and memory settings once, when they
are first imported, so :func:`configure` must run before anything imports keras. Nothing in this
module imports a deep-learning framework at import time; :func:`visible_gpus`,
:func:`distribution_scope` and :func:`is_out_of_memory` import it lazily, after configuration.

Keras runs on TensorFlow unless the user exported ``KERAS_BACKEND`` (e.g. ``torch``), which is
respected. Multi-GPU data parallelism (``MirroredStrategy``) exists only on the TensorFlow
backend; with PyTorch the network runs on a single device (the first visible GPU, else the CPU).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

from ..io.errors import InputError
from ..io.log import get_logger
from ..io.params import BY_NAME
from . import cpu

__all__ = [
    "configure",
    "parse_gpus",
    "cpu_count",
    "visible_gpus",
    "usable_gpus",
    "distribution_scope",
    "is_out_of_memory",
    "release_cached_memory",
    "PRECISIONS",
    "bfloat16_is_fast",
    "resolve_precision",
    "precision_policy",
]

#: Network arithmetic: ``mixed`` computes in bfloat16 with float32 weights, last layer and residual
#: sum; ``auto`` picks mixed where the hardware has bfloat16 units, float32 elsewhere.
PRECISIONS: tuple[str, ...] = BY_NAME["precision"].choices or ()  # the parameter table's

_CPU_WORDS = {"", "cpu", "-1"}
_ALL_WORDS = {"all", "none"}
_GPU_ID = re.compile(r"^(\d+|GPU-[0-9A-Fa-f-]+|MIG-[0-9A-Za-z/-]+)$")

_strategy = None  # the one MirroredStrategy of this process, made on first use


def parse_gpus(gpus: str | int | None) -> list[str] | None:
    """``"0,1"`` -> ``["0", "1"]``; ``"cpu"``/``""`` -> ``[]``; ``None``/``"all"`` -> ``None`` (every visible GPU).

    Duplicate ids are dropped (IsoNet counted distinct ids). Ids are CUDA indices or GPU/MIG UUIDs.
    """
    if gpus is None:
        return None
    text = str(gpus).strip()
    if text.lower() in _ALL_WORDS:
        return None
    if text.lower() in _CPU_WORDS:
        return []
    ids: list[str] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if not _GPU_ID.match(part):
            raise InputError(
                f"--gpus {text!r}: {part!r} is not a GPU id; give GPU numbers such as 0 or 0,1, "
                f"'cpu' (or an empty string) for the CPU, or leave it out to use every visible GPU."
            )
        if part not in ids:
            ids.append(part)
    return ids


def cpu_count() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _framework_imported() -> bool:
    return any(name in sys.modules for name in ("tensorflow", "torch", "jax"))


def _ids_from_environment() -> list[str]:
    """GPU ids visible without asking a framework: CUDA_VISIBLE_DEVICES, else /dev/nvidiaN."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        parsed = parse_gpus(env if env.strip() != "" else "cpu")
        return parsed or []
    return sorted((p.name[len("nvidia"):] for p in Path("/dev").glob("nvidia[0-9]*")), key=int)


def configure(gpus: str | int | None, threads: int | None = None) -> list[str]:
    """Choose devices and threads for the network; call before keras/tensorflow is imported.

    Parameters
    ----------
    gpus : ``"0,1"`` to use those GPUs, ``"cpu"`` or ``""`` for the CPU only, ``None`` to leave
        ``CUDA_VISIBLE_DEVICES`` as it is (every visible GPU).
    threads : CPU threads for the framework's operations (default: every core this process may
        use, or ``OMP_NUM_THREADS`` when the scheduler set it).

    Returns
    -------
    The GPU ids in use: the requested ones, ``[]`` for the CPU, and for ``None`` the ids named by
    ``CUDA_VISIBLE_DEVICES`` or found as ``/dev/nvidiaN``. :func:`visible_gpus` gives the
    framework's own count once it is imported.
    """
    ids = parse_gpus(gpus)
    log = get_logger()
    if threads is not None and int(threads) < 1:
        raise InputError(f"--ncpus {threads}: must be at least 1; give the number of CPU cores to use.")

    if ids is not None:
        wanted = ",".join(ids) if ids else "-1"
        if _framework_imported() and os.environ.get("CUDA_VISIBLE_DEVICES") != wanted:
            log.warning("GPU selection %r comes after the deep-learning framework was imported; it may not apply", gpus)
        os.environ["CUDA_VISIBLE_DEVICES"] = wanted
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # TensorFlow's Python logger warns about tf.function retracing whenever refine loads the next
    # iteration's model (a new model, a new trace: expected); keep its errors only
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    in_use = ids if ids is not None else _ids_from_environment()
    if threads is not None or not in_use:
        n = int(threads) if threads is not None else _threads_from_environment()
        for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            if threads is not None:
                os.environ[name] = str(n)
            else:
                os.environ.setdefault(name, str(n))
        if "torch" in sys.modules:  # too late for the environment: tell torch directly
            sys.modules["torch"].set_num_threads(n)
    log.debug(
        "devices: %s, backend %s, %s CPU threads",
        ("GPU " + ",".join(in_use)) if in_use else "CPU",
        os.environ["KERAS_BACKEND"],
        os.environ.get("TF_NUM_INTRAOP_THREADS", "default"),
    )
    return in_use


def _threads_from_environment() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else cpu_count()


def _backend() -> str:
    import keras

    return keras.backend.backend()


def visible_gpus() -> int:
    """How many GPUs the keras backend sees (imports the framework)."""
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    if backend == "jax":
        import jax

        return sum(1 for d in jax.devices() if d.platform == "gpu")
    return 0


def distribution_scope() -> contextlib.AbstractContextManager:
    """Scope to build, load and compile models in: mirrored over GPUs when TF sees several.

    With one GPU, the CPU, or the torch backend (single device only) this is a no-op context.
    """
    global _strategy
    if _backend() != "tensorflow" or visible_gpus() < 2:
        return contextlib.nullcontext()
    if _strategy is None:
        import tensorflow as tf

        _strategy = tf.distribute.MirroredStrategy()
        get_logger().info("mirroring the network over %d GPUs", _strategy.num_replicas_in_sync)
    return _strategy.scope()


def mirrored_strategy():
    """The process's multi-GPU strategy when :func:`distribution_scope` made one, else None.

    Models built in that scope run their batches through it; knowing it here spares reading
    Keras' private record of the scope a model was built in.
    """
    return _strategy


def usable_gpus() -> int:
    """:func:`visible_gpus`, refusing zero where the scheduler gave this task a GPU.

    The pipeline's GPU tasks set ``ISONET_REQUIRE_GPU=1``: a container started without its GPU
    option, or a node without a working driver, then fails in seconds instead of training for
    days on the CPU.
    """
    count = visible_gpus()
    if count == 0 and os.environ.get("ISONET_REQUIRE_GPU", "").strip().lower() in ("1", "true", "yes"):
        raise InputError("this task was given a GPU (ISONET_REQUIRE_GPU=1) but the framework sees none; check the "
                         "container's GPU option (--nv; --gpus all on Docker; --device nvidia.com/gpu=all on "
                         "Podman) and the node's NVIDIA driver (nvidia-smi).")
    return count


def _gpu_capabilities() -> list[tuple[int, int]]:
    """CUDA compute capability of every GPU the keras backend sees (imports the framework)."""
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        found = []
        for gpu in tf.config.list_physical_devices("GPU"):
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            found.append(tuple(capability) if capability else (0, 0))
        return found
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return []
        return [tuple(torch.cuda.get_device_capability(i)) for i in range(torch.cuda.device_count())]
    return []


def bfloat16_is_fast(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True where bfloat16 arithmetic is done by hardware: every visible GPU of compute capability
    8.0 or later (A100, H100, RTX 30xx on), or, on the CPU, AMX or AVX512-BF16 (Sapphire Rapids,
    Zen 4 on) with kernels allowed to use them (:func:`isonet_steps.network.cpu.bfloat16_units`).
    Elsewhere bfloat16 is emulated and slower than float32.
    """
    gpus = _gpu_capabilities()
    if gpus:
        return all(capability >= (8, 0) for capability in gpus)
    return cpu.bfloat16_units(cpuinfo=cpuinfo)


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``mixed`` where :func:`bfloat16_is_fast`, else ``float32``; others unchanged."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: must be one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    chosen = "mixed" if bfloat16_is_fast() else "float32"
    get_logger().info("precision auto: %s (%s)", chosen,
                      "bfloat16 units found" if chosen == "mixed" else "no bfloat16 units")
    return chosen


@contextlib.contextmanager
def precision_policy(precision: str):
    """Build (and train) networks in ``precision`` ("float32" or "mixed") inside this block:
    Keras's global dtype policy is set to mixed_bfloat16 for "mixed" and restored afterwards.
    """
    import keras

    previous = keras.config.dtype_policy()
    if precision == "mixed":
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


_OOM_TYPES = ("ResourceExhaustedError", "OutOfMemoryError")
_OOM_TEXT = re.compile(r"out of memory|\bOOM\b|RESOURCE_EXHAUSTED", re.IGNORECASE)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the out-of-memory errors of TensorFlow, PyTorch, XLA and Python (cause chain included)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, MemoryError):
            return True
        if any(cls.__name__ in _OOM_TYPES for cls in type(current).__mro__):
            return True
        text = str(current)
        if _OOM_TEXT.search(text[:20000]):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def release_cached_memory() -> None:
    """Free what a failed, out-of-memory attempt left behind before a smaller one is tried.

    The exception's frames hold the attempt's tensors until collected, and PyTorch keeps freed
    GPU blocks in its own cache, sized for the failed batch: returned to the driver, the
    smaller batch finds the memory in one piece.
    """
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
