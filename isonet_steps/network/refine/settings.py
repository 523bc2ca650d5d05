"""What decides refine's result (:class:`RefineSettings`, IsoNet's defaults) and IsoNet's batch rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ...core.noise import NOISE_MODES, noise_schedule
from ...io.errors import InputError
from ...io.params import default
from ..devices import PRECISIONS

__all__ = ["RefineSettings", "default_batch_size", "default_steps_per_epoch", "NOISE_MODES"]

#: Settings that may change between a run and its continuation without changing what was computed.
_FREE_TO_CHANGE = ("iterations",)


@dataclass
class RefineSettings:
    """Everything that decides the result of refine; defaults from the parameter table (IsoNet's)."""

    iterations: int = default("iterations")
    epochs: int = default("epochs")
    steps_per_epoch: int | None = default("steps_per_epoch")
    batch_size: int | None = default("batch_size")
    filter_base: int = default("filter_base")
    unet_depth: int = default("unet_depth")
    convs_per_depth: int = default("convs_per_depth")
    kernel: int = default("kernel")
    dropout: float = default("dropout")
    batch_norm: bool = default("batch_norm")
    learning_rate: float = default("learning_rate")
    noise_level: Sequence[float] = default("noise_level")
    noise_start_iter: Sequence[int] = default("noise_start_iter")
    noise_mode: str = default("noise_mode")
    select_subtomo_number: int | None = default("select_subtomo_number")
    pretrained_model: str | None = default("pretrained_model")
    seed: int = default("seed")
    precision: str = default("precision")
    # train half 1 -> half 2 and back (needs RefineData.second_half); no added noise
    noise2noise: bool = default("noise2noise")
    # stop an iteration's epochs after this many without improvement; 0: all epochs
    early_stop_patience: int = default("early_stop_patience")
    # new predictions' weight in the wedge fill (the rest: the previous fill); 1: IsoNet
    fill_relaxation: float = default("fill_relaxation")

    def validate(self) -> None:
        """Refuse bad settings before any data is read or any network built."""
        checks = [
            (self.iterations >= 1, f"--iterations {self.iterations} must be at least 1"),
            (self.epochs >= 1, f"--epochs {self.epochs} must be at least 1"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1,
             f"--steps-per-epoch {self.steps_per_epoch} must be at least 1"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1"),
            (self.filter_base >= 1, f"--filter-base {self.filter_base} must be at least 1"),
            (1 <= self.unet_depth <= 6, f"--unet-depth {self.unet_depth} must be 1..6"),
            (self.convs_per_depth >= 2, f"--convs-per-depth {self.convs_per_depth} must be at least 2"),
            (self.kernel % 2 == 1, f"--kernel {self.kernel} must be odd"),
            (0.0 <= self.dropout < 1.0, f"--dropout {self.dropout} must be in [0, 1)"),
            (self.learning_rate > 0, f"--learning-rate {self.learning_rate} must be positive"),
            (self.noise_mode in NOISE_MODES,
             f"--noise-mode {self.noise_mode!r} must be one of {', '.join(NOISE_MODES)}"),
            (self.precision in PRECISIONS, f"--precision {self.precision!r} must be one of {', '.join(PRECISIONS)}"),
            (self.select_subtomo_number is None or self.select_subtomo_number >= 1,
             f"--select-subtomo-number {self.select_subtomo_number} must be at least 1"),
            (0 < self.fill_relaxation <= 1,
             f"--fill-relaxation {self.fill_relaxation} must be above 0 and at most 1 (1: IsoNet's fill)"),
            (self.early_stop_patience >= 0,
             f"--early-stop-patience {self.early_stop_patience} must be 0 (off) or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message + ".")
        noise_schedule(self.iterations, self.noise_level, self.noise_start_iter)

    def fingerprint(self) -> dict:
        """Settings that must match to continue a run (the iteration count may grow), JSON-comparable."""
        d = asdict(self)
        d["noise_level"] = [float(v) for v in self.noise_level]
        d["noise_start_iter"] = [int(v) for v in self.noise_start_iter]
        for key in _FREE_TO_CHANGE:
            d.pop(key)
        if not self.noise2noise:
            d.pop("noise2noise")  # result folders from before the option continue as they were
        if not self.early_stop_patience:
            d.pop("early_stop_patience")  # off trains every epoch, as before the option
        if self.fill_relaxation == 1:
            d.pop("fill_relaxation")  # IsoNet's fill, as before the option
        return d


def default_batch_size(n_gpus: int) -> int:
    """IsoNet's rule: max(4, 2 per GPU)."""
    return max(4, 2 * max(n_gpus, 0))


def default_steps_per_epoch(n_subtomos: int, batch_size: int) -> int:
    """IsoNet's rule: min(6·N / batch, 200), at least 1."""
    return max(1, min(int(6 * n_subtomos / batch_size), 200))
