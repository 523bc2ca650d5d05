"""CPU features and the kernels TensorFlow is asked for (no arithmetic: the rules, on given flags)."""

from __future__ import annotations

import os
import subprocess
import sys

from isonet_steps.network import cpu

_AVX2_EPYC = "fpu sse sse2 avx avx2 fma"
_ZEN4 = "fpu avx avx2 avx512f avx512_vnni avx512_bf16"


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC test\nflags\t\t: {flags}\n\n")
    return str(path)


def test_tensorflows_own_rule_leaves_avx2_only_cpus_on_eigen(tmp_path):
    assert cpu.onednn_enabled({}, _cpuinfo(tmp_path, _AVX2_EPYC)) is False
    assert cpu.onednn_enabled({}, _cpuinfo(tmp_path, _ZEN4)) is True
    assert cpu.onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "1"}, _cpuinfo(tmp_path, _AVX2_EPYC)) is True
    assert cpu.onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "false"}, _cpuinfo(tmp_path, _ZEN4)) is False


def test_onednn_is_asked_for_unless_the_user_chose(monkeypatch):
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    env = {}
    cpu.prefer_onednn(env)
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    env = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    cpu.prefer_onednn(env)
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    monkeypatch.setattr(cpu.platform, "machine", lambda: "aarch64")
    env = {}
    cpu.prefer_onednn(env)
    assert env == {}


def test_importing_the_package_sets_it_before_tensorflow():
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    code = "import os, sys, isonet_steps; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60).stdout.split()
    import platform

    assert out == (["1", "False"] if platform.machine().lower() in {"x86_64", "amd64"} else ["None", "False"])


def test_describe_names_the_units_and_the_kernels(tmp_path):
    line = cpu.describe({"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}, _cpuinfo(tmp_path, _ZEN4))
    assert "AMD EPYC test" in line and "AVX2 AVX-512 AVX512-VNNI AVX512-BF16" in line
    assert "bfloat16 units: no" in line and "oneDNN (max ISA AVX2)" in line
    assert "Eigen (oneDNN off)" in cpu.describe({}, _cpuinfo(tmp_path, _AVX2_EPYC))
