"""Batch and streaming prediction, with the shipped default model unless another is given."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .errors import ModelError
from .models import Estimator, load_model
from .regions import (DEFAULT_MAX_GAP, DEFAULT_MIN_LENGTH, DEFAULT_THRESHOLD, call_regions,
                      scores_to_calls)
from .sequences import Prediction, Record, clean_sequence

WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_MODEL = WEIGHTS / "default"


@lru_cache(maxsize=4)
def _load_cached(path: str) -> Estimator:
    return load_model(path)


def get_model(model: str | Path | Estimator | None = None) -> Estimator:
    """An estimator from a folder path, an estimator itself, or None for the shipped default."""
    if isinstance(model, Estimator):
        return model
    path = Path(model) if model is not None else DEFAULT_MODEL
    if model is None and not (path / "model.json").is_file():
        raise ModelError(f"the default model is missing from the installation ({path})")
    return _load_cached(str(path.resolve()))


def default_threshold(model: Estimator, track: str = "pdb") -> float:
    """The threshold stored with a model for a track (chosen on validation data), else 0.5."""
    return float(model.meta.get("thresholds", {}).get(track, DEFAULT_THRESHOLD))


def predict_disorder(sequence: str | Sequence[str], model=None, track: str = "pdb"):
    """Disorder scores of one sequence (a float32 array) or of a list of sequences (a list of arrays)."""
    est = get_model(model)
    single = isinstance(sequence, str)
    seqs = [sequence] if single else list(sequence)
    seqs = [clean_sequence(s, f"sequence {i + 1}") for i, s in enumerate(seqs)]
    out = est.predict_proba(seqs, track=track)
    return out[0] if single else out


def batches(records: Iterable[Record], max_residues: int = 200_000) -> Iterator[list[Record]]:
    """Group records into batches of about ``max_residues`` residues."""
    batch, size = [], 0
    for rec in records:
        batch.append(rec)
        size += len(rec)
        if size >= max_residues:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def to_prediction(rec: Record, scores: np.ndarray, threshold: float, min_length: int,
                  max_gap: int) -> Prediction:
    """A :class:`Prediction` with calls and regions from a record and its scores."""
    calls = scores_to_calls(scores, threshold, min_length, max_gap)
    return Prediction(rec.id, rec.sequence, scores, calls, call_regions(calls))


def predict_records(records: Iterable[Record], model=None, threshold: float | None = None,
                    min_length: int = DEFAULT_MIN_LENGTH, max_gap: int = DEFAULT_MAX_GAP,
                    track: str = "pdb", max_residues: int = 200_000,
                    on_warning: Callable[[str], None] | None = None) -> Iterator[Prediction]:
    """Stream predictions for a stream of records, a batch at a time.

    Models that report per-protein problems (e.g. an LLM answer of the wrong length) pass them to
    ``on_warning`` as one line naming the record.
    """
    est = get_model(model)
    thr = default_threshold(est, track) if threshold is None else threshold
    for batch in batches(records, max_residues):
        scores = est.predict_proba([r.sequence for r in batch], track=track)
        for item in getattr(est, "report", []):
            if on_warning:
                on_warning(f"record '{batch[item['index']].id}': {item['message']}")
        for rec, sc in zip(batch, scores):
            yield to_prediction(rec, sc, thr, min_length, max_gap)
