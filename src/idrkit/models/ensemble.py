"""Ensembles of trained members: weighted averaging, or stacking by logistic regression (``ensemble``).

Members are given as family names (trained here on the same records) or as folders of trained models
(used as they are). A saved ensemble holds each member in a sub-folder ``member<i>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import Estimator, Params, read_model_json
from .stack import newton_logistic


@dataclass
class EnsembleParams(Params):
    members: list[str] = field(default_factory=lambda: ["cnn", "gbdt"])
    mode: str = "mean"  # "mean" or "stack"
    weights: list[float] = field(default_factory=list)


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Ensemble(Estimator):
    """Average (or stack) the scores of several models."""

    family = "ensemble"
    params_class = EnsembleParams

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self.members: list[Estimator] = []

    def fit(self, records, valid=None) -> "Ensemble":
        from . import get_family, load_model

        if self.params.mode not in ("mean", "stack"):
            raise ModelError(f"ensemble mode must be 'mean' or 'stack', not '{self.params.mode}'")
        self.members = []
        for spec in self.params.members:
            if Path(spec).is_dir():
                self.members.append(load_model(spec))
            else:
                self.members.append(get_family(spec)().fit(records, valid))
        self.tracks = tuple(t for t in ("pdb", "nox") if all(t in m.tracks for m in self.members)) or ("pdb",)
        n = len(self.members)
        w = np.asarray(self.params.weights or [1.0 / n] * n, dtype=np.float64)
        bias = 0.0
        if self.params.mode == "stack":
            labelled = [r for r in (valid or []) if r.labels is not None and r.track == "pdb"]
            if not labelled:
                raise ModelError("stacking needs held-out labelled records (valid)")
            w, bias = self._stack(labelled)
        self.arrays = {"weights": w, "bias": np.array([bias])}
        return self

    def _stack(self, records):
        seqs = [r.sequence for r in records]
        y = np.concatenate([r.labels for r in records])
        keep = y >= 0
        x = np.stack([_logit(np.concatenate(m.predict_proba(seqs)))[keep] for m in self.members], axis=1)
        y = y[keep].astype(np.float64)
        # a logistic regression on a handful of member logits (a tiny ridge keeps Newton's steps defined)
        xb = np.hstack([x, np.ones((x.shape[0], 1))])
        beta = newton_logistic(xb, y, np.full(xb.shape[1], 1e-6), steps=25)
        return beta[:-1], float(beta[-1])

    def _predict(self, sequences, track):
        w, bias = self.arrays["weights"], float(self.arrays["bias"][0])
        parts = [m.predict_proba(sequences, track=track) for m in self.members]
        out = []
        for i in range(len(sequences)):
            if self.params.mode == "stack":
                z = sum(wj * _logit(parts[j][i]) for j, wj in enumerate(w)) + bias
                out.append(1 / (1 + np.exp(-z)))
            else:
                out.append(sum(wj * parts[j][i] for j, wj in enumerate(w)) / w.sum())
        return out

    def parts(self):
        return list(self.members)

    def save(self, folder):
        folder = super().save(folder)
        for i, m in enumerate(self.members):
            m.save(Path(folder) / f"member{i}")
        return folder

    @classmethod
    def load(cls, folder):
        from . import load_model

        model = super().load(folder)
        n = model.arrays["weights"].size
        model.members = []
        for i in range(n):
            sub = Path(folder) / f"member{i}"
            read_model_json(sub)
            model.members.append(load_model(sub))
        return model
