"""Teachers for distillation: functions from sequences to per-residue scores.

``metapredict-v3`` and ``metapredict-v2`` (disorder) and ``metapredict-plddt`` (its predicted AlphaFold pLDDT,
0-100) need the ``[teacher]`` extra (PyPI ``metapredict``); any trained idrkit model folder is a teacher too. Teachers are used at training time only; scores are cached on disk
keyed by teacher name and sequence hash (:class:`idrkit.cache.ArrayCache`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .cache import ArrayCache
from .errors import InputError, require

TeacherFn = Callable[[list[str]], list[np.ndarray]]


def _metapredict(version: str) -> TeacherFn:
    meta = require("metapredict", "teacher")

    def run(seqs: list[str]) -> list[np.ndarray]:
        # metapredict accepts only its own alphabet; rare letters go to their closest standard residue
        clean = [s.translate(_RARE_TO_STANDARD) for s in seqs]
        if version == "pLDDT":
            out = meta.predict_pLDDT(clean, show_progress_bar=False)
        else:
            out = meta.predict_disorder(clean, version=version, round_values=False, show_progress_bar=False)
        # a list of [sequence, scores] pairs, possibly reordered by length: match by sequence
        by_seq = {item[0]: item[-1] for item in out}
        return [np.asarray(by_seq[s], dtype=np.float32) for s in clean]

    return run


_RARE_TO_STANDARD = str.maketrans({"B": "N", "Z": "Q", "J": "L", "U": "C", "O": "K", "X": "A"})


def get_teacher(name: str) -> TeacherFn:
    """A teacher by name: ``metapredict-v3``, ``metapredict-v2`` or the path of a trained idrkit model."""
    if name in ("metapredict-v3", "metapredict"):
        return _metapredict("V3")
    if name == "metapredict-v2":
        return _metapredict("V2")
    if name == "metapredict-plddt":
        return _metapredict("pLDDT")
    if Path(name).is_dir():
        from .models import load_model

        model = load_model(name)
        return lambda seqs: [np.asarray(s, dtype=np.float32) for s in model.predict_proba(seqs)]
    raise InputError(f"unknown teacher '{name}': use metapredict-v3, metapredict-v2, metapredict-plddt or a "
                     "model folder")


def teacher_scores(name: str, sequences: list[str], fn: TeacherFn | None = None,
                   cache: ArrayCache | None = None, progress=None) -> list[np.ndarray]:
    """Scores of a teacher for every sequence, computing only what the cache lacks."""
    cache = cache if cache is not None else ArrayCache(f"teacher-{Path(name).name if Path(name).is_dir() else name}")
    return cache.compute(sequences, fn or get_teacher(name), progress=progress)
