"""Device selection: parsed before TensorFlow loads, environment set, out-of-memory recognised."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from isonet_steps.io.errors import InputError
from isonet_steps.network import devices

_VARS = ("CUDA_VISIBLE_DEVICES", "TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "KERAS_BACKEND",
         "TF_FORCE_GPU_ALLOW_GROWTH", "TF_CPP_MIN_LOG_LEVEL", "CUDA_DEVICE_ORDER")


@pytest.fixture
def env(monkeypatch):
    """configure() writes os.environ; start clean and restore everything afterwards."""
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)
    return os.environ


@pytest.mark.parametrize(
    ("given", "expected"),
    [("0,1", ["0", "1"]), ("1, 0 ,1", ["1", "0"]), (0, ["0"]), ("cpu", []), ("CPU", []), ("", []),
     ("-1", []), (None, None), ("all", None), ("GPU-8f3a-11", ["GPU-8f3a-11"])],
)
def test_parse_gpus(given, expected):
    assert devices.parse_gpus(given) == expected


@pytest.mark.parametrize("bad", ["gpu0", "0;1", "1.5", "-2"])
def test_bad_gpu_list_is_an_input_error(bad):
    with pytest.raises(InputError, match="--gpus"):
        devices.parse_gpus(bad)


def test_configure_cpu_hides_gpus_and_uses_every_core(env):
    assert devices.configure("cpu") == []
    assert env["CUDA_VISIBLE_DEVICES"] == "-1"
    assert env["TF_NUM_INTRAOP_THREADS"] == str(devices.cpu_count())
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert env["KERAS_BACKEND"] == "tensorflow"


def test_configure_gpu_list_and_thread_override(env, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert devices.configure("1,0", threads=3) == ["1", "0"]
    assert env["CUDA_VISIBLE_DEVICES"] == "1,0"
    assert env["KERAS_BACKEND"] == "torch"  # the user's backend is kept
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert env["TF_NUM_INTRAOP_THREADS"] == "3" and env["OMP_NUM_THREADS"] == "3"


def test_configure_none_leaves_visibility_alone(env, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert devices.configure(None) == ["2", "3"]
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert "TF_NUM_INTRAOP_THREADS" not in env  # GPUs: CPU threads left to the framework


def test_configure_respects_scheduler_thread_count(env, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    devices.configure("")
    assert env["TF_NUM_INTRAOP_THREADS"] == "1"


def test_bad_thread_count_is_refused(env):
    with pytest.raises(InputError, match="at least 1"):
        devices.configure("cpu", threads=0)


def test_a_task_given_a_gpu_refuses_to_run_without_one(monkeypatch):
    """ISONET_REQUIRE_GPU (set by the pipeline's GPU tasks): zero visible GPUs is an error, not a CPU run."""
    from isonet_steps.network import devices

    monkeypatch.setattr(devices, "visible_gpus", lambda: 0)
    monkeypatch.delenv("ISONET_REQUIRE_GPU", raising=False)
    assert devices.usable_gpus() == 0  # a CPU run where nobody asked for a GPU
    monkeypatch.setenv("ISONET_REQUIRE_GPU", "1")
    with pytest.raises(InputError, match="given a GPU .* sees none"):
        devices.usable_gpus()
    monkeypatch.setattr(devices, "visible_gpus", lambda: 2)
    assert devices.usable_gpus() == 2


def test_module_does_not_import_tensorflow_and_configuration_applies():
    code = (
        "import sys\n"
        "from isonet_steps.network import devices\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "devices.configure('cpu', threads=1)\n"
        "assert 'tensorflow' not in sys.modules\n"
        "import tensorflow as tf\n"
        "assert devices.visible_gpus() == 0\n"
        "import contextlib\n"
        "assert isinstance(devices.distribution_scope(), contextlib.nullcontext)\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in _VARS}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok" in result.stdout


class ResourceExhaustedError(RuntimeError):
    """Stands in for tensorflow.errors.ResourceExhaustedError (matched by name)."""


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError."""


@pytest.mark.parametrize(
    "exc",
    [
        ResourceExhaustedError("OOM when allocating tensor with shape[4,64,96,96,96]"),
        OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 123 bytes"),
        MemoryError(),
    ],
)
def test_out_of_memory_is_recognised(exc):
    assert devices.is_out_of_memory(exc)


def test_out_of_memory_found_in_the_cause_chain():
    try:
        try:
            raise OutOfMemoryError("CUDA out of memory")
        except OutOfMemoryError as inner:
            raise RuntimeError("predict failed") from inner
    except RuntimeError as outer:
        assert devices.is_out_of_memory(outer)


@pytest.mark.parametrize("exc", [ValueError("shapes (2,3) and (4,) do not match"), RuntimeError("room temperature")])
def test_other_errors_are_not_out_of_memory(exc):
    assert not devices.is_out_of_memory(exc)


@pytest.mark.parametrize(
    ("flags", "fast"),
    [("fpu sse avx512f avx512_bf16 amx_tile", True), ("fpu avx2 amx_bf16 amx_tile", True),
     ("fpu sse avx2 avx512f", False)],
)
def test_bfloat16_units_are_found_in_the_cpu_flags(tmp_path, monkeypatch, flags, fast):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\n")
    monkeypatch.setattr(devices, "_gpu_capabilities", lambda: [])
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert devices.bfloat16_is_fast(str(cpuinfo)) is fast
    assert devices.bfloat16_is_fast(str(tmp_path / "absent")) is False
    # the units are there but the kernels may not use them: Eigen (oneDNN off), oneDNN held to AVX2
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert devices.bfloat16_is_fast(str(cpuinfo)) is False
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert devices.bfloat16_is_fast(str(cpuinfo)) is fast
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert devices.bfloat16_is_fast(str(cpuinfo)) is False


def test_bfloat16_on_gpus_needs_ampere_or_later(monkeypatch):
    monkeypatch.setattr(devices, "_gpu_capabilities", lambda: [(8, 0), (9, 0)])
    assert devices.bfloat16_is_fast()
    monkeypatch.setattr(devices, "_gpu_capabilities", lambda: [(9, 0), (7, 5)])  # one V100/T4-class card
    assert not devices.bfloat16_is_fast()


def test_resolve_precision(monkeypatch):
    monkeypatch.setattr(devices, "bfloat16_is_fast", lambda: True)
    assert devices.resolve_precision("auto") == "mixed"
    monkeypatch.setattr(devices, "bfloat16_is_fast", lambda: False)
    assert devices.resolve_precision("auto") == "float32"
    assert devices.resolve_precision("mixed") == "mixed"
    with pytest.raises(InputError, match="--precision 'half'"):
        devices.resolve_precision("half")
