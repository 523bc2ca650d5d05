"""Is this installation usable? Versions, the Keras backend, and the GPUs it sees.

``isonet check`` prints this. Unlike IsoNet's ``check`` (which never imported TensorFlow), it
imports the deep-learning stack and runs one tiny operation on the chosen Keras backend, so a
broken CUDA/TensorFlow install is found before a long refine job starts; it also draws one tiny
plot, which loads every library the report's and the FSC's figures need.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

__all__ = ["EnvironmentReport", "check_environment", "BACKENDS", "REQUIRED"]

#: Packages every step needs (import name, distribution name).
REQUIRED: tuple[tuple[str, str], ...] = (
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("mrcfile", "mrcfile"),
    ("starfile", "starfile"),
    ("click", "click"),
    ("matplotlib", "matplotlib"),
    ("PIL", "pillow"),
)

#: Keras backends and the package each one needs.
BACKENDS: dict[str, str] = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


@dataclass
class EnvironmentReport:
    """What ``isonet check`` found; ``ok`` is False with a one-line ``reason`` when unusable."""

    versions: dict[str, str] = field(default_factory=dict)
    backend: str = "tensorflow"
    gpus: list[str] | None = None
    ok: bool = True
    reason: str = ""

    def lines(self) -> list[str]:
        """What ``isonet check`` prints, one line each, so a user can paste it into a bug report."""
        out = [f"{name}: {value}" for name, value in self.versions.items()]
        out.append(f"Keras backend: {self.backend} (KERAS_BACKEND)")
        if self.gpus is None:
            out.append("GPUs: not checked (the backend does not work)")
        else:
            names = f" ({', '.join(self.gpus)})" if self.gpus else " (CPU only)"
            out.append(f"GPUs seen by {self.backend}: {len(self.gpus)}{names}")
        return out


#: Other distribution names that install the same module (e.g. the CPU-only TensorFlow wheel).
_ALIASES = {"tensorflow": ("tensorflow-cpu", "tensorflow-gpu", "tf-nightly")}


def _version(distribution: str) -> str:
    for name in (distribution, *_ALIASES.get(distribution, ())):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"


def _fail(report: EnvironmentReport, reason: str) -> EnvironmentReport:
    if report.ok:
        report.ok, report.reason = False, reason
    return report


def _gpus(backend: str) -> list[str]:
    """GPU names as the backend lists them (an empty list on CPU-only machines)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    return []


def _draw_a_plot() -> None:
    """A small figure to PNG and SVG: every library the report's and the FSC's plots load."""
    from ..figures.plots import figure_png, figure_svg, line_axes, new_figure

    fig = new_figure(120, 80)
    line_axes(fig, {"a": ([0, 1], [0, 1])}, xlabel="Å⁻¹")
    if not figure_png(fig).startswith(b"\x89PNG") or "Å⁻¹" not in figure_svg(fig):
        raise RuntimeError("the figure came out empty")


def check_environment() -> EnvironmentReport:
    """Import the stack, record versions, and run a tiny Keras computation on the chosen backend."""
    from .. import __version__

    report = EnvironmentReport()
    report.versions["isonet-nf"] = __version__
    report.versions["Python"] = f"{platform.python_version()} ({sys.executable})"
    from ..figures.plots import prepare_matplotlib

    prepare_matplotlib()  # before matplotlib is imported: no cache warning under a read-only home
    for module, distribution in REQUIRED:
        try:
            import_module(module)
            report.versions[distribution] = _version(distribution)
        except Exception as exc:  # any import failure makes the install unusable
            report.versions[distribution] = "MISSING"
            _fail(report, f"{distribution} cannot be imported ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                          "reinstall isonet-nf.")

    if report.ok:
        try:
            _draw_a_plot()
        except Exception as exc:  # the images install matplotlib's dependencies one by one (--no-deps)
            reason = " ".join(str(exc).split())[:200]
            _fail(report, f"matplotlib cannot draw ({type(exc).__name__}: {reason}); reinstall isonet-nf.")

    backend = os.environ.get("KERAS_BACKEND", "tensorflow").strip() or "tensorflow"
    report.backend = backend
    if backend not in BACKENDS:
        report.versions["keras"] = _version("keras")
        return _fail(report, f"KERAS_BACKEND={backend!r} is not a Keras backend isonet-nf supports; use one of "
                             f"{', '.join(BACKENDS)}.")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for distribution in ("tensorflow", BACKENDS[backend]):
        if distribution not in report.versions:
            report.versions[distribution] = _version(distribution)
    try:
        keras = import_module("keras")
        report.versions["keras"] = _version("keras")
        active = keras.backend.backend()
        if active != backend:
            return _fail(report, f"Keras runs on {active!r}, not on KERAS_BACKEND={backend!r}; set KERAS_BACKEND "
                                 "before starting Python.")
        value = float(keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.ones((2, 3)))))
        if value != 6.0:
            return _fail(report, f"Keras ({backend}) computed 2x3 ones summing to {value}, not 6; the {backend} "
                                 "install is broken.")
    except Exception as exc:
        report.versions.setdefault("keras", _version("keras"))
        return _fail(report, f"Keras with the {backend} backend does not work ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}); "
                             f"install {BACKENDS[backend]} for this Python or set KERAS_BACKEND.")
    try:
        report.gpus = _gpus(backend)
    except Exception as exc:
        return _fail(report, f"{backend} cannot list GPUs ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                             "check the CUDA install.")
    return report
