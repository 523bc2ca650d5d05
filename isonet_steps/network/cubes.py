"""The subtomogram cubes refine trains on, in network space: one per box, and for noise2noise the
same boxes cut from the second half tomogram, kept as a second array (not stacked after the first).

A :class:`Cubes` is what refine fills, merges and draws its pairs from; every step that touches
the cubes of a box (prediction, merge, fill) does it for both halves at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.normalize import to_network

__all__ = ["Cubes", "halves_to_network"]


def halves_to_network(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The two half cubes of one box in network space, ``(2, c, c, c)``, scaled by ONE percentile range.

    The range comes from the voxels of both halves pooled: the two halves then share one affine map,
    so the signal they have in common has the same values in both (noise2noise needs the target's
    expectation to be the input's signal in the same units), the range does not depend on which half
    is the input, and, the halves having the same noise level, it is the range either half would get
    alone (what the network sees in the single-tomogram mode).
    """
    return to_network(np.stack([first, second]))


@dataclass
class Cubes:
    """One cube ``(N, c, c, c)`` per box and, for noise2noise, the same boxes' second half (None otherwise)."""

    first: np.ndarray
    second: np.ndarray | None = None

    def __post_init__(self) -> None:
        """The halves hold the same boxes, so they have one shape."""
        if self.second is not None and self.second.shape != self.first.shape:
            raise ValueError(f"the halves' cubes differ in shape: {self.first.shape} and {self.second.shape}")

    @classmethod
    def from_subtomos(cls, subtomos: np.ndarray, second_half: np.ndarray | None = None) -> Cubes:
        """Raw subtomograms as the network sees them; both halves of a box scaled together
        (:func:`halves_to_network`).
        """
        if second_half is None:
            return cls(np.stack([to_network(s) for s in subtomos]))
        both = [halves_to_network(a, b) for a, b in zip(subtomos, second_half)]
        return cls(np.stack([h[0] for h in both]), np.stack([h[1] for h in both]))

    @classmethod
    def from_stacked(cls, stacked: np.ndarray, noise2noise: bool) -> Cubes:
        """Undo :meth:`stacked`."""
        if not noise2noise:
            return cls(stacked)
        n = len(stacked) // 2
        return cls(stacked[:n], stacked[n:])

    @property
    def noise2noise(self) -> bool:
        """True when the cubes have a second half."""
        return self.second is not None

    @property
    def halves(self) -> list[np.ndarray]:
        """The first half, then the second where there is one."""
        return [self.first] if self.second is None else [self.first, self.second]

    def __len__(self) -> int:
        """The number of boxes."""
        return len(self.first)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(boxes, c, c, c)``: the shape of one half."""
        return tuple(self.first.shape)

    def stacked(self) -> np.ndarray:
        """Both halves in one array, the second after the first: the layout of the saved fill files."""
        return self.first if self.second is None else np.concatenate([self.first, self.second])

    def zeros(self) -> Cubes:
        """Cubes of zeros with these halves' shape."""
        return self.map(np.zeros_like)

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> Cubes:
        """``fn`` applied to each half."""
        return Cubes(fn(self.first), None if self.second is None else fn(self.second))
