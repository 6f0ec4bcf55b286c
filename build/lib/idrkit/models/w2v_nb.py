"""The seed's method 1: Word2Vec residue vectors, a ±2 window mean, Gaussian naive Bayes.

Training needs the ``[w2v]`` extra (gensim, scikit-learn); prediction needs numpy only. The residue
vectors come from :mod:`idrkit.features.word2vec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import require
from ..features.word2vec import train_residue_vectors, window_vectors
from ..records import Record
from .base import Estimator, Params, labelled_arrays


@dataclass
class W2VParams(Params):
    vector_size: int = 100
    w2v_window: int = 5
    epochs: int = 5
    half_window: int = 2
    seed: int = 0
    max_training_residues: int = 2_000_000


class Word2VecNB(Estimator):
    """Word2Vec + window mean + Gaussian naive Bayes (``w2v-nb``)."""

    family = "w2v-nb"
    params_class = W2VParams

    def _features(self, seq: str) -> np.ndarray:
        return window_vectors(self.arrays["vectors"], seq, self.params.half_window)

    def fit(self, records: Sequence[Record], valid=None) -> "Word2VecNB":
        naive_bayes = require("sklearn.naive_bayes", "w2v")
        p = self.params
        self.arrays = {"vectors": train_residue_vectors([r.sequence for r in records], p.vector_size,
                                                        p.w2v_window, p.epochs, p.seed)}
        xs, ys = [], []
        for seq, lab in labelled_arrays(records):
            keep = lab >= 0
            xs.append(self._features(seq)[keep])
            ys.append(lab[keep])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if x.shape[0] > p.max_training_residues:
            pick = np.random.default_rng(p.seed).choice(x.shape[0], p.max_training_residues, replace=False)
            x, y = x[pick], y[pick]
        nb = naive_bayes.GaussianNB().fit(x, y)
        self.arrays.update(theta=nb.theta_.astype(np.float64), var=nb.var_.astype(np.float64),
                           log_prior=np.log(nb.class_prior_), classes=nb.classes_.astype(np.int64))
        return self

    def _predict(self, sequences, track):
        theta, var, log_prior = self.arrays["theta"], self.arrays["var"], self.arrays["log_prior"]
        pos = int(np.flatnonzero(self.arrays["classes"] == 1)[0]) if (self.arrays["classes"] == 1).any() else None
        norm = -0.5 * np.sum(np.log(2 * np.pi * var), axis=1)
        out = []
        for seq in sequences:
            x = self._features(seq).astype(np.float64)
            joint = log_prior + norm - 0.5 * (((x[:, None, :] - theta) ** 2) / var).sum(axis=2)
            joint -= joint.max(axis=1, keepdims=True)
            prob = np.exp(joint)
            prob /= prob.sum(axis=1, keepdims=True)
            out.append(prob[:, pos] if pos is not None else np.zeros(len(seq)))
        return out
