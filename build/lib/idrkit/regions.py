"""From per-residue scores to 0/1 calls and to disordered regions.

Defaults (documented in the README): a residue is disordered when its score is at least the threshold
(0.5); runs of ordered residues of at most ``max_gap`` (default 3) between two disordered runs are filled;
disordered runs shorter than ``min_length`` (default 5) are dropped. Regions are 1-based and inclusive.
Both options can be set to 0 to keep the raw thresholded calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .records import SCALED_TRACKS, Prediction

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_LENGTH = 5
DEFAULT_MAX_GAP = 3


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based start and end-exclusive indices of the runs of True in a boolean vector."""
    padded = np.concatenate(([0], mask.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return edges[0::2], edges[1::2]


def binary_calls(scores: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """0/1 calls (uint8): 1 where the score is at least ``threshold``."""
    return (np.asarray(scores) >= threshold).astype(np.uint8)


def smooth_calls(calls: np.ndarray, min_length: int = DEFAULT_MIN_LENGTH,
                 max_gap: int = DEFAULT_MAX_GAP) -> np.ndarray:
    """Fill ordered gaps of at most ``max_gap`` inside disorder, then drop disordered runs below ``min_length``."""
    out = np.asarray(calls).astype(bool).copy()
    if max_gap > 0 and out.any():
        starts, ends = runs(~out)
        inner = (starts > 0) & (ends < out.size) & (ends - starts <= max_gap)
        for s, e in zip(starts[inner], ends[inner]):
            out[s:e] = True
    if min_length > 1:
        starts, ends = runs(out)
        for s, e in zip(starts, ends):
            if e - s < min_length:
                out[s:e] = False
    return out.astype(np.uint8)


def call_regions(calls: np.ndarray) -> list[tuple[int, int]]:
    """Disordered regions of a 0/1 vector as 1-based inclusive (start, end) pairs."""
    starts, ends = runs(np.asarray(calls).astype(bool))
    return [(int(s) + 1, int(e)) for s, e in zip(starts, ends)]


def scores_to_calls(scores: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                    min_length: int = DEFAULT_MIN_LENGTH, max_gap: int = DEFAULT_MAX_GAP) -> np.ndarray:
    """Thresholded and smoothed 0/1 calls of one protein."""
    return smooth_calls(binary_calls(scores, threshold), min_length, max_gap)


@dataclass(frozen=True)
class CallOptions:
    """How scores become calls: the track, the threshold (None: the model's own) and the smoothing."""

    track: str = "pdb"
    threshold: float | None = None
    min_length: int = DEFAULT_MIN_LENGTH
    max_gap: int = DEFAULT_MAX_GAP

    def __post_init__(self):
        if self.threshold is not None:
            if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                    or not math.isfinite(self.threshold) or not 0 <= self.threshold <= 1:
                raise InputError(f"threshold must be a number from 0 to 1, not {self.threshold!r}")
        for name in ("min_length", "max_gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"{name.replace('_', '-')} must be a whole number of at least 0, not {value!r}")

    def as_dict(self) -> dict:
        return {"track": self.track, "threshold": self.threshold, "min_length": self.min_length,
                "max_gap": self.max_gap}


def track_calls(scores: np.ndarray, options: CallOptions, threshold: float) -> np.ndarray:
    """Smoothed calls of a track: score >= threshold, or for ``plddt`` (0-100) pLDDT below threshold * 100."""
    if options.track in SCALED_TRACKS:
        low = np.asarray(scores) <= threshold * SCALED_TRACKS[options.track]
        return smooth_calls(low, options.min_length, options.max_gap)
    return scores_to_calls(scores, threshold, options.min_length, options.max_gap)


def make_prediction(record_id: str, sequence: str, scores: np.ndarray, options: CallOptions,
                    threshold: float) -> Prediction:
    """A :class:`Prediction`: calls at ``threshold`` smoothed as ``options`` say, and their regions."""
    calls = track_calls(scores, options, threshold)
    return Prediction(record_id, sequence, scores, calls, call_regions(calls), options.track)
