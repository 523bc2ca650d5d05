"""Training watches itself: a loss that is NaN/Inf, or that never changes, stops the iteration at once.

Either means the network learns nothing from then on (IsoNet2 #22: NaN losses; DeepDeWedge #28/#31:
``val_loss = 0`` on empty halves), and every further epoch only hides it. The iteration stops
before its model or record is saved, so the run folder keeps the last good iteration and a rerun
continues from it (steps/refine.py adds where).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..io.errors import InputError

__all__ = ["TrainingStopped", "check_batch_loss", "check_epoch_losses", "check_epochs_differ"]

#: Fewest batches of one epoch whose identical losses count as "the loss does not change".
MIN_CONSTANT_BATCHES = 3

_NONFINITE_CAUSES = ("likely causes: a learning rate too high for this data (--learning-rate), NaN/Inf or extreme "
                     "values in the subtomograms (isonet prepare-star checks tomograms; re-extract), or bfloat16 "
                     "overflow (--precision float32)")
_CONSTANT_CAUSES = ("likely causes: constant or empty subtomograms (a blank mask region, halves whose data are all "
                    "0), or a learning rate of 0; check the subtomograms and the mask")


class TrainingStopped(InputError):
    """Training stopped because its loss went wrong; the message says what and the likely causes."""


def check_batch_loss(loss: float, epoch: int, step: int) -> None:
    """A non-finite training loss stops the iteration at the batch it appears."""
    if not math.isfinite(loss):
        raise TrainingStopped(f"training loss became {loss} at epoch {epoch + 1}, step {step + 1}; "
                              f"{_NONFINITE_CAUSES}.")


def check_epoch_losses(batch_losses: Sequence[float], val_losses: Sequence[float], epoch: int) -> None:
    """Non-finite validation loss, or every training batch of the epoch with the very same loss: stop."""
    bad_val = [v for v in val_losses if not math.isfinite(v)]
    if bad_val:
        raise TrainingStopped(f"validation loss became {bad_val[0]} at epoch {epoch + 1}; {_NONFINITE_CAUSES}.")
    if len(batch_losses) >= MIN_CONSTANT_BATCHES and len(set(batch_losses)) == 1:
        raise TrainingStopped(f"training loss stayed exactly {batch_losses[0]:.6g} for all {len(batch_losses)} steps "
                              f"of epoch {epoch + 1}: the network is not learning; {_CONSTANT_CAUSES}.")


def check_epochs_differ(losses: Sequence[float], val_losses: Sequence[float]) -> None:
    """Two epochs in a row with exactly the same training and validation loss: nothing changes, stop."""
    if len(losses) >= 2 and losses[-1] == losses[-2] and val_losses[-1] == val_losses[-2]:
        raise TrainingStopped(f"training and validation loss stayed exactly {losses[-1]:.6g} / {val_losses[-1]:.6g} "
                              f"over epochs {len(losses) - 1} and {len(losses)}: the network is not learning; "
                              f"{_CONSTANT_CAUSES}.")
