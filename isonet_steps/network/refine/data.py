"""The subtomograms refine trains on (:class:`RefineData`), and the checks that they fit the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...core.wedge import Wedge
from ...io.errors import InputError
from ..cubes import Cubes
from .settings import RefineSettings

__all__ = ["RefineData"]


@dataclass
class RefineData:
    """Subtomograms (raw values, ``(N, crop, crop, crop)``) with their tilt ranges, wedges and names.

    ``wedges`` (one per subtomogram) carry the recorded angles of a series when extract gave a
    tilt-angle file, so a gap in the series is trained as missing; None means the ``tilts`` ranges.
    """

    subtomos: np.ndarray
    tilts: np.ndarray  # (N, 2) degrees
    names: list[str]
    cube: int
    crop: int = field(init=False)
    second_half: np.ndarray | None = None  # noise2noise: the same boxes cut from the other half tomogram
    second_names: list[str] | None = None
    wedges: list[Wedge] | None = None  # per subtomogram; None: range wedges from ``tilts``
    # what the saved models record of their training data (io/model_record.py); not part of the fingerprint
    voxel_size: float | None = None  # Å per voxel; None: not known
    deconvolved: bool | None = None  # cut from deconvolved tomograms; None: not known, or mixed
    digest: str | None = None  # of the subtomogram files (steps/refine.py)

    def __post_init__(self):
        """The crop is the subtomograms' own edge, so it cannot disagree with them."""
        self.crop = int(self.subtomos.shape[-1])
        if self.second_half is not None and np.shape(self.second_half) != np.shape(self.subtomos):
            raise InputError(f"the second half's subtomograms have shape {np.shape(self.second_half)}, the first "
                             f"half's {np.shape(self.subtomos)}; extract the same boxes from both half tomograms.")
        if self.wedges is not None and len(self.wedges) != len(self.subtomos):
            raise ValueError(f"{len(self.wedges)} wedges for {len(self.subtomos)} subtomograms; give one each")

    def subtomo_wedges(self) -> list[Wedge]:
        """The wedge of every subtomogram: ``wedges`` when given, else each ``tilts`` range."""
        if self.wedges is not None:
            return list(self.wedges)
        return [Wedge.from_range(float(lo), float(hi)) for lo, hi in np.asarray(self.tilts, dtype=float)]

    def fingerprint(self) -> dict:
        """What identifies the data, so a run is not continued on other subtomograms (or other angles)."""
        d = {"names": list(self.names), "cube": int(self.cube), "crop": int(self.crop),
             "tilts": np.asarray(self.tilts, dtype=float).round(3).tolist()}
        if self.second_half is not None:
            d["second_names"] = list(self.second_names or [])
        if self.wedges is not None and any(w.angles is not None for w in self.wedges):
            d["angles"] = [None if w.angles is None else [round(a, 3) for a in w.angles] for w in self.wedges]
        return d

    def cubes(self) -> Cubes:
        """The subtomograms as the network sees them; with a second half, each box's halves scaled together."""
        return Cubes.from_subtomos(self.subtomos, self.second_half)

    def check(self, settings: RefineSettings) -> None:
        """Refuse data that ``settings`` cannot train on: sizes the network cannot halve, a missing second half."""
        factor = 2 ** settings.unet_depth
        if self.cube % factor or self.crop % factor:
            raise InputError(f"cube size {self.cube} and crop size {self.crop} must both be divisible by {factor} "
                             "(2^--unet-depth); re-extract with such sizes.")
        if self.crop < self.cube:
            raise InputError(f"crop size {self.crop} is smaller than cube size {self.cube}; re-extract with "
                             "--crop-size >= --cube-size.")
        if settings.noise2noise and self.second_half is None:
            raise InputError("noise2noise training needs the subtomograms of both half tomograms (even/odd), but only "
                             "one half was given; extract the same boxes from the second half too, or train without "
                             "noise2noise.")
        n = len(self.subtomos)
        if n == 0:
            raise InputError("the subtomogram STAR lists no subtomograms; run extract first.")
        if settings.select_subtomo_number and settings.select_subtomo_number > n:
            raise InputError(f"--select-subtomo-number {settings.select_subtomo_number} exceeds the {n} "
                             f"subtomograms; choose at most {n}.")
