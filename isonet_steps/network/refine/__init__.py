"""refine: the iterative training of the missing-wedge network, in pieces.

:mod:`.settings` (what decides the result), :mod:`.data` (the subtomograms), :mod:`.start` (sizes,
iteration 0 or the run continued), :mod:`.fill` (the missing-wedge fill of the drawn cubes),
:mod:`.train` (one iteration's epochs) and :mod:`.loop` (the iterations). The names other modules
use are here.
"""

from ...core.noise import NOISE_MODES
from .data import RefineData
from .loop import refine
from .settings import RefineSettings, default_batch_size, default_steps_per_epoch
from .train import EARLY_STOP_MIN_IMPROVEMENT, data_threads, early_stop_reason, recalibrate_batch_norm

__all__ = ["RefineSettings", "RefineData", "refine", "default_batch_size", "default_steps_per_epoch",
           "early_stop_reason", "EARLY_STOP_MIN_IMPROVEMENT", "recalibrate_batch_norm", "data_threads", "NOISE_MODES"]
