"""What the CPU offers the network: its vector units, and oneDNN switched on where TensorFlow would not.

Why this exists: TensorFlow (Linux x86) turns its oneDNN kernels on by default only on CPUs with
neural-network extensions (AVX512-VNNI, AVX512-BF16, AVX-VNNI or AMX). On an AVX2-only CPU (AMD
EPYC before Zen 4, Intel before Ice Lake) it falls back to Eigen, whose 3D convolution gradients
are slow: a training step of 8×32³ at filter base 16 took 5.3 s there, 8x this package's figure on
an AVX-512 machine. oneDNN has AVX2 kernels too, 2.5-3x faster than Eigen for these convolutions,
so :func:`prefer_onednn` asks for them unless the user set ``TF_ENABLE_ONEDNN_OPTS`` themselves.
It must run before TensorFlow is imported: importing ``isonet_steps`` does it.

``ONEDNN_MAX_CPU_ISA`` (oneDNN's own switch) restricts oneDNN's kernels; an AVX-512 machine with
``ONEDNN_MAX_CPU_ISA=AVX2`` runs the AVX2 kernels an AVX2-only CPU would get, and bfloat16 then
counts as emulated (no bfloat16 kernels below AVX512_CORE_BF16).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_flags", "prefer_onednn", "onednn_enabled", "bfloat16_units", "describe"]

#: oneDNN ISA limits that leave out every bfloat16 instruction (oneDNN's names, upper case).
_ISA_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"}

#: Features TensorFlow checks before turning oneDNN on by itself (Linux x86, /proc/cpuinfo names).
_TF_ONEDNN_FEATURES = {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}

_TRUE = {"1", "true", "yes", "on"}


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[-1].split())
    return set()


def prefer_onednn(environ=os.environ) -> None:
    """Ask TensorFlow for oneDNN on x86 unless the user chose (``TF_ENABLE_ONEDNN_OPTS`` set)."""
    if platform.machine().lower() in {"x86_64", "amd64"}:
        environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def onednn_enabled(environ=os.environ, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether TensorFlow runs oneDNN kernels: the user's (or our) setting, else TensorFlow's rule."""
    value = environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is not None:
        return value.strip().lower() in _TRUE
    return bool(_TF_ONEDNN_FEATURES & cpu_flags(cpuinfo))


def bfloat16_units(environ=os.environ, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True where the CPU computes bfloat16 in hardware and the kernels may use it: AMX or
    AVX512-BF16, oneDNN on, and ``ONEDNN_MAX_CPU_ISA`` not below AVX512_CORE_BF16.
    """
    if not {"amx_bf16", "avx512_bf16"} & cpu_flags(cpuinfo):
        return False
    if not onednn_enabled(environ, cpuinfo):
        return False  # Eigen's bfloat16 convolutions are emulated, slower than float32
    return environ.get("ONEDNN_MAX_CPU_ISA", "ALL").strip().upper() not in _ISA_WITHOUT_BF16


def describe(environ=os.environ, cpuinfo: str = "/proc/cpuinfo") -> str:
    """One line for benchmark output: the CPU's model, vector units and the kernels in use."""
    flags = cpu_flags(cpuinfo)
    model = ""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[-1].strip()
                break
    except OSError:
        pass
    units = [name for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AVX512-VNNI", "avx512_vnni"),
                                     ("AVX512-BF16", "avx512_bf16"), ("AMX", "amx_tile")) if flag in flags]
    isa = environ.get("ONEDNN_MAX_CPU_ISA")
    if onednn_enabled(environ, cpuinfo):
        kernels = "oneDNN" + (f" (max ISA {isa})" if isa else "")
    else:
        kernels = "Eigen (oneDNN off)"
    return (f"CPU: {model or platform.processor() or 'unknown'}, {os.cpu_count()} logical cores; "
            f"{' '.join(units) or 'no AVX2'}; bfloat16 units: {'yes' if bfloat16_units(environ, cpuinfo) else 'no'}; "
            f"TensorFlow kernels: {kernels}")
