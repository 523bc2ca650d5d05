"""The missing-wedge fill of one iteration: what each drawn cube's missing wedge is taken from.

Iteration n fills the missing wedge of the cubes its batches draw with the predictions of the
network of iteration n−1 (iteration 1: the measured part alone, nothing to add), and merges each
cube's measured part with that fill (:func:`merged_cubes`). With ``--fill-relaxation`` below 1 the
fill of every cube mixes the new predictions into the previous iteration's fill.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...core.normalize import percentile_normalize
from ...core.wedge import Wedge, measured_part
from ..cubes import Cubes
from ..pairs import merge_halves_with_predictions, merge_with_prediction
from .settings import RefineSettings

if TYPE_CHECKING:  # predict is imported when the subtomograms are first predicted
    from ..inference import InferenceFunction

__all__ = ["SubtomoPredictor", "WedgeFill", "relaxed_fill", "merged_cubes"]


class SubtomoPredictor:
    """Predicts the subtomograms each iteration fills with one inference network (batch norm
    folded, dropout gone; :func:`~isonet_steps.network.fold.inference_model`), built once and given the
    newly trained weights each iteration, so its compiled graph is reused.
    """

    def __init__(self, precision: str):
        self.precision = precision
        self._fn: InferenceFunction | None = None

    def __call__(self, model, originals: np.ndarray, batch_size: int) -> np.ndarray:
        """``model``'s predictions of ``originals``, each percentile-normalised as a fill is."""
        from ..fold import copy_inference_weights
        from ..inference import model_predict_fn, predict_cubes

        if self._fn is None:
            self._fn = model_predict_fn(model, precision=self.precision)
        else:
            copy_inference_weights(model, self._fn.model)
        predicted = predict_cubes(self._fn, originals, batch_size)
        return np.stack([percentile_normalize(p) for p in predicted])


@dataclass
class WedgeFill:
    """The missing-wedge fill a refine call carries from iteration to iteration (``current``: the last)."""

    originals: Cubes
    wedges: list[Wedge]
    settings: RefineSettings
    predictor: Callable[..., np.ndarray]  # (model, stacked cubes, batch size) -> predictions: SubtomoPredictor
    log: logging.Logger
    current: Cubes | None = None

    def update(self, iteration: int, model, drawn: np.ndarray, batch_size: int) -> Cubes:
        """What iteration ``iteration`` fills the missing wedge of its cubes from, for the boxes ``drawn``
        (all of them with a relaxed fill, where each fill builds on the last; both halves of each box):
        the predictions of ``model``, the previous iteration's network, not yet trained in this one;
        before any training, the measured part itself. Cubes not filled stay zero.
        """
        originals, settings = self.originals, self.settings
        boxes = drawn if settings.fill_relaxation == 1 else np.arange(len(originals))
        if iteration == 1 and not settings.pretrained_model:  # a fresh network would add nothing
            self.current = originals.zeros()
            for half, filled in zip(originals.halves, self.current.halves):
                for b in boxes:
                    filled[b] = percentile_normalize(measured_part(half[b], self.wedges[b]))
            return self.current
        self.current = relaxed_fill(self._predicted(iteration, model, boxes, batch_size), self.current, iteration,
                                    settings.fill_relaxation)
        return self.current

    def _predicted(self, iteration: int, model, boxes: np.ndarray, batch_size: int) -> Cubes:
        """``model``'s predictions of the cubes of ``boxes`` (both halves); the other cubes zero."""
        originals = self.originals
        whole = len(boxes) == len(originals)
        halves = len(originals.halves)
        self.log.info("iteration %d: predicting %d of %d subtomograms with the model of iteration %d", iteration,
                      halves * len(boxes), halves * len(originals), iteration - 1)
        chosen = originals if whole else originals.map(lambda half: half[boxes])
        # both halves in one call, half 1's boxes then half 2's: the batches are those of one stack
        predicted = Cubes.from_stacked(self.predictor(model, chosen.stacked(), batch_size), originals.noise2noise)
        if whole:
            return predicted
        fill = originals.zeros()
        for filled, new in zip(fill.halves, predicted.halves):
            filled[boxes] = new
        return fill


def relaxed_fill(new: Cubes, previous: Cubes | None, iteration: int, weight: float) -> Cubes:
    """The fill of iteration ``iteration``'s missing wedges: ``weight`` on the new predictions, the rest
    on the previous iteration's fill (from iteration 3; iteration 2 takes iteration 1's predictions
    whole). Damps the swings of the fill from one iteration to the next; 1 is IsoNet's (the new alone).
    """
    if iteration <= 2 or weight == 1:
        return new
    if previous is None:
        raise ValueError(f"the relaxed fill of iteration {iteration} needs the fill of iteration {iteration - 1}")
    # previous + weight·(new − previous), all in place in the fresh ``new``: the fill of real data is gigabytes
    for fresh, old in zip(new.halves, previous.halves):
        fresh -= old
        fresh *= weight
        fresh += old
    return new


def merged_cubes(originals: Cubes, fill: Cubes, wedges: list[Wedge], boxes: np.ndarray) -> Cubes:
    """Every chosen box's cubes merged with their fill (measured part from the data, missing wedge from
    the fill); with two halves, both of a box together, rescaled as one. The other cubes stay zero: no
    batch draws them.
    """
    merged = originals.zeros()
    for b in boxes:
        if originals.second is None or fill.second is None or merged.second is None:
            merged.first[b] = merge_with_prediction(originals.first[b], fill.first[b], wedges[b])
        else:
            merged.first[b], merged.second[b] = merge_halves_with_predictions(
                originals.first[b], originals.second[b], fill.first[b], fill.second[b], wedges[b])
    return merged
