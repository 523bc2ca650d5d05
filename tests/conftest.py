"""Shared fixtures: one small simulated tomogram for the whole session, its STAR files, CLI helpers.

Session fixtures are read-only: a test that writes must write under its own ``tmp_path``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from scipy import ndimage

os.environ.setdefault("ISONET_NO_PROGRESS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Size of the session phantom (Z, Y, X): small enough for a 2-core machine, big enough for 32³ cubes.
SMALL_SHAPE = (48, 96, 96)
SMALL_SEED = 1
PIXEL_SIZE = 10.0

_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR)\b")


@dataclass(frozen=True)
class PhantomFiles:
    """The session phantom on disk, plus the arrays themselves.

    ``tomo`` sits alone in ``tomo_dir`` (so prepare-star lists only it); ground truth, labels and
    a sample mask (labels dilated by 2 voxels, int8) sit beside that folder.
    """

    root: Path
    tomo_dir: Path
    tomo: Path
    ground_truth: Path
    labels: Path
    mask: Path
    phantom: object  # isonet_steps.core.phantom.Phantom
    mask_array: np.ndarray
    pixel_size: float = PIXEL_SIZE


@pytest.fixture(scope="session")
def phantom_small(tmp_path_factory) -> PhantomFiles:
    """A 48x96x96 simulated tomogram (±60°, 3° step, SNR 0.5) written as MRCs."""
    from isonet_steps.core.phantom import make_phantom
    from isonet_steps.io.mrc import write_volume

    phantom = make_phantom(SMALL_SHAPE, seed=SMALL_SEED, pixel_size=PIXEL_SIZE)
    root = tmp_path_factory.mktemp("phantom")
    tomo_dir = root / "tomograms"
    tomo = write_volume(tomo_dir / "tomo.mrc", phantom.tomogram, PIXEL_SIZE)
    truth = write_volume(root / "ground_truth.mrc", phantom.ground_truth, PIXEL_SIZE)
    labels = write_volume(root / "labels.mrc", phantom.labels, PIXEL_SIZE, dtype=np.int8)
    mask_array = ndimage.binary_dilation(phantom.labels > 0, iterations=2).astype(np.int8)
    mask = write_volume(root / "mask.mrc", mask_array, PIXEL_SIZE, dtype=np.int8)
    return PhantomFiles(root, tomo_dir, tomo, truth, labels, mask, phantom, mask_array)


def invoke(args: Iterable[str], cwd: str | os.PathLike | None = None) -> Result:
    """Run ``isonet ARGS`` in-process (CliRunner, stderr kept apart) from ``cwd``."""
    from isonet_steps.cli.main import cli

    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args], prog_name="isonet")
    finally:
        os.chdir(old)


@pytest.fixture(scope="session")
def run_isonet() -> Callable[..., Result]:
    """``run_isonet(*args, cwd=None)`` -> click Result of ``isonet *args`` run in-process."""

    def run(*args, cwd=None) -> Result:
        return invoke(args, cwd=cwd)

    return run


def check_ok(result: Result) -> Result:
    """Assert a CLI run succeeded, showing its stderr otherwise."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstderr:\n{result.stderr}\nexception: {result.exception!r}"
    return result


def check_bad_input(result: Result, *words: str, not_written: Iterable[str | os.PathLike] = ()) -> str:
    """Assert a clean refusal: non-zero exit, exactly one ``Error:`` line naming ``words``
    (case-insensitive), no traceback or other stray stderr text, and none of ``not_written`` exists.

    Returns the error line.
    """
    assert result.exit_code != 0, f"expected failure, got exit 0; stderr: {result.stderr}"
    assert isinstance(result.exception, SystemExit), f"uncaught exception {result.exception!r}"
    stderr = result.stderr
    assert "Traceback" not in stderr and "Traceback" not in result.stdout
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, f"expected one Error: line, got:\n{stderr}"
    stray = [line for line in stderr.splitlines()
             if line.strip() and not line.startswith("Error:") and not _LOG_LINE.match(line)]
    assert not stray, f"unexpected stderr lines: {stray}"
    for word in words:
        assert word.lower() in errors[0].lower(), f"{word!r} not in {errors[0]!r}"
    for path in not_written:
        path = Path(path)
        assert not path.exists() or (path.is_dir() and not any(path.iterdir())), f"{path} was written"
    return errors[0]


@pytest.fixture(scope="session")
def bad_input() -> Callable[..., str]:
    """``bad_input(result, *words, not_written=[...])``: see :func:`check_bad_input`."""
    return check_bad_input


def _prepare_star(phantom: PhantomFiles, out: Path, number: int, mask: bool) -> Path:
    check_ok(invoke(["prepare-star", phantom.tomo_dir, "-o", out, "--number-subtomos", number,
                     "--pixel-size", phantom.pixel_size]))
    if mask:
        import starfile

        df = starfile.read(out)
        df["rlnMaskName"] = [str(phantom.mask)]
        starfile.write(df, out, overwrite=True)
    return out


@pytest.fixture(scope="session")
def tomo_star(phantom_small, tmp_path_factory) -> Path:
    """tomograms.star for the session phantom (prepare-star, 8 subtomograms, no mask)."""
    return _prepare_star(phantom_small, tmp_path_factory.mktemp("star") / "tomograms.star", 8, mask=False)


@pytest.fixture(scope="session")
def masked_tomo_star(phantom_small, tmp_path_factory) -> Path:
    """tomograms.star for the session phantom with rlnMaskName = the labels-based mask."""
    return _prepare_star(phantom_small, tmp_path_factory.mktemp("star") / "tomograms.star", 8, mask=True)


def _bfloat16_cannot_run() -> str:
    """Why bfloat16 kernels cannot run in this emulation, or ''. ``ONEDNN_MAX_CPU_ISA=AVX2`` on an
    AVX-512 CPU emulates an AVX2-only one, but TensorFlow still sees AVX-512 and hands bfloat16 to
    oneDNN, which then has no kernel (AbortedError). A real AVX2 CPU runs it on Eigen instead.
    """
    from isonet_steps.network import cpu

    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa in cpu._ISA_WITHOUT_BF16 and cpu.onednn_enabled() and "avx512f" in cpu.cpu_flags():
        return (f"ONEDNN_MAX_CPU_ISA={isa} on an AVX-512 CPU: TensorFlow gives bfloat16 to oneDNN, "
                "which has no kernel for it")
    return ""


def pytest_collection_modifyitems(config, items):
    reason = _bfloat16_cannot_run()
    if reason:
        for item in items:
            if "bfloat16" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def identity_model(tmp_path_factory):
    """A tiny depth-2 U-Net whose convolutions are all zero: the residual makes it the identity."""
    keras = pytest.importorskip("keras")
    from isonet_steps.network.unet import build_unet, save_model

    model = build_unet(depth=2, filter_base=4)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv3D, keras.layers.Conv3DTranspose)):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    return save_model(model, tmp_path_factory.mktemp("model") / "model_final.keras")
