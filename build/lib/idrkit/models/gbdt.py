"""LightGBM on windowed hand-made features (``gbdt``; the ``[gbdt]`` extra).

The booster is stored in ``weights.npz`` as the bytes of LightGBM's own text model format (no pickle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import require
from ..features.encoders import FeatureSpec, featurize
from .base import Estimator, Params, labelled_arrays


@dataclass
class GBDTParams(Params):
    n_estimators: int = 400
    learning_rate: float = 0.05
    num_leaves: int = 63
    min_child_samples: int = 100
    subsample_residues: int = 1_500_000
    early_stopping_rounds: int = 30
    seed: int = 0
    threads: int = 0


class GradientBoosting(Estimator):
    """Gradient-boosted trees on one-hot, scales, window compositions, entropy and charge."""

    family = "gbdt"
    params_class = GBDTParams

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self._booster = None

    def default_spec(self) -> FeatureSpec:
        return FeatureSpec()

    def _matrix(self, pairs, rng):
        xs, ys = [], []
        for seq, lab in pairs:
            keep = lab >= 0
            xs.append(featurize(seq, self.spec)[keep])
            ys.append(lab[keep])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if x.shape[0] > self.params.subsample_residues:
            pick = rng.choice(x.shape[0], self.params.subsample_residues, replace=False)
            x, y = x[pick], y[pick]
        return x, y

    def fit(self, records, valid=None) -> "GradientBoosting":
        lgb = require("lightgbm", "gbdt")
        p = self.params
        rng = np.random.default_rng(p.seed)
        x, y = self._matrix(labelled_arrays([r for r in records if r.track == "pdb"] or records), rng)
        model = lgb.LGBMClassifier(n_estimators=p.n_estimators, learning_rate=p.learning_rate,
                                   num_leaves=p.num_leaves, min_child_samples=p.min_child_samples,
                                   subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                                   random_state=p.seed, n_jobs=p.threads or None, verbose=-1)
        fit_kw = {}
        vpairs = [(r.sequence, r.labels) for r in (valid or []) if r.labels is not None and r.track == "pdb"]
        if vpairs:
            vx, vy = self._matrix(vpairs, rng)
            fit_kw = {"eval_set": [(vx, vy)], "eval_metric": "auc",
                      "callbacks": [lgb.early_stopping(p.early_stopping_rounds, verbose=False)]}
        model.fit(x, y, **fit_kw)
        text = model.booster_.model_to_string()
        self.arrays = {"booster": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
        self._booster = model.booster_
        return self

    def _after_load(self) -> None:
        self._booster = None

    def _predict(self, sequences, track):
        if self._booster is None:
            lgb = require("lightgbm", "gbdt")
            self._booster = lgb.Booster(model_str=self.arrays["booster"].tobytes().decode("utf-8"))
        feats = [featurize(s, self.spec) for s in sequences]
        if not feats:
            return []
        probs = self._booster.predict(np.concatenate(feats))
        bounds = np.cumsum([0] + [f.shape[0] for f in feats])
        return [probs[bounds[i]:bounds[i + 1]] for i in range(len(feats))]
