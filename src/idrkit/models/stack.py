"""Tracks stacked on a disorder model: a logistic regression per track over its scores (``stack``).

A ``stack`` model holds a disorder model (``base``: a CNN with ``pdb``, ``nox`` and ``teacher`` heads, which
serves the ``pdb`` and ``nox`` tracks itself), optionally a second model for further tracks (``extra``, e.g.
one with a ``plddt`` output), and one logistic regression per stacked track (``binding``, ``linker``). Per
residue, a regression sees the three disorder scores, their means over 9, 21, 51 and 151 residues, their dips
below the 21-, 51- and 151-residue means, a few sequence features (:data:`SEQUENCE_SPEC`) and, with
``interactions``, those sequence features times the ``nox`` score and its 21-residue mean; with ``protein``,
protein-level and region features of the ``nox`` score (:func:`region_features`); with ``plddt``, the extra
model's predicted pLDDT (:func:`plddt_features`). A ``partner`` model (e.g. a CNN with a fine-tuned
``binding`` head) that has a stacked track too is averaged with its regression, score for score. Prediction
is numpy only. A saved model holds the base in ``base/``, the extra model in ``extra/`` and the partner in
``partner/``.

Fitting on the base model's scores of its own training proteins learns from scores better than the base
gives on new proteins; :meth:`Stack.fit_features` takes features built from out-of-fold scores instead
(``benchmarks/function_stack.py`` does so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError
from ..features.encoders import FeatureSpec, featurize_many
from ..records import TRACKS, Record
from .base import Estimator, Params

DISORDER_HEADS = ("pdb", "nox", "teacher")
SEQUENCE_SPEC = FeatureSpec(composition_windows=[15], scale_windows=[9, 21], entropy_windows=[15],
                            charge_windows=[15], one_hot=False, position=True)


@dataclass
class StackParams(Params):
    base: str = "default"  # the disorder model it was built on (a shipped name or a folder)
    extra: str = ""  # a model serving further tracks as they are (e.g. plddt), or none
    l2: float = 10.0
    interactions: bool = True
    protein: bool = False  # also the protein's length, mean nox score and the nox region each residue is in
    plddt: bool = False  # also the extra model's predicted pLDDT, its means and dips (plddt_features)
    partner: str = ""  # a model whose scores of a stacked track are averaged with the regression's, or none


def window_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean over ``w`` residues centred on each residue (the ends repeat the first and last value)."""
    pad = np.pad(np.asarray(x, dtype=np.float64), (w // 2, w // 2), mode="edge")
    c = np.concatenate(([0.0], np.cumsum(pad)))
    return (c[w:] - c[:-w]) / w


def region_features(nox: np.ndarray) -> np.ndarray:
    """Per residue: the protein's log length, mean ``nox`` score and fraction with ``nox`` >= 0.5, and the log
    length of the run of residues on the same side of 0.5 that the residue is in, once for disordered runs and
    once for ordered ones (a short disordered stretch in an ordered protein is not a long IDR)."""
    nox = np.asarray(nox, dtype=np.float64)
    n = len(nox)
    dis = nox >= 0.5
    bounds = np.r_[0, np.flatnonzero(np.diff(dis.astype(np.int8))) + 1, n]
    run = np.log(np.repeat(np.diff(bounds), np.diff(bounds)).astype(np.float64))
    return np.stack([np.full(n, np.log(n)), np.full(n, nox.mean()), np.full(n, dis.mean()), run * dis,
                     run * ~dis], 1)


def plddt_features(plddt: np.ndarray) -> np.ndarray:
    """Per residue: a predicted pLDDT (0-100) on [0, 1], its means over 21 and 51 residues and its rise above
    the 51-residue mean (a disordered stretch that a structure model would half fold, as bound motifs are)."""
    x = np.asarray(plddt, dtype=np.float64) / 100.0
    m21, m51 = window_mean(x, 21), window_mean(x, 51)
    return np.stack([x, m21, m51, x - m51], 1)


def stack_features(scores: dict[str, np.ndarray], sequence_features: np.ndarray, interactions: bool,
                   protein: bool = False, plddt: np.ndarray | None = None) -> np.ndarray:
    """Per-residue inputs of the regressions from the three disorder scores and the sequence features
    (with ``protein``, also :func:`region_features` of the ``nox`` score; with a ``plddt`` array,
    :func:`plddt_features` of it)."""
    cols, means = [], {}
    for h in DISORDER_HEADS:
        x = np.asarray(scores[h], dtype=np.float64)
        means[h] = {w: window_mean(x, w) for w in (9, 21, 51, 151)}
        cols += [x] + list(means[h].values()) + [x - means[h][w] for w in (21, 51, 151)]
    out = np.hstack([np.stack(cols, 1), sequence_features])
    if interactions:
        nox = np.asarray(scores["nox"], dtype=np.float64)
        out = np.hstack([out, sequence_features * nox[:, None], sequence_features * means["nox"][21][:, None]])
    if protein:
        out = np.hstack([out, region_features(scores["nox"])])
    if plddt is not None:
        out = np.hstack([out, plddt_features(plddt)])
    return out


def fit_logistic(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], l2: float) -> dict[str, np.ndarray]:
    """An L2-penalised logistic regression (Newton's method) on standardised features; unknown labels
    (< 0) are ignored. Returns its arrays (``mu``, ``sd``, ``beta``; the last of ``beta`` is the bias)."""
    x, y = np.concatenate(xs), np.concatenate(ys)
    keep = y >= 0
    x, y = x[keep], y[keep].astype(np.float64)
    if not y.size or y.min() == y.max():
        raise ModelError("a stacked track needs labelled residues of both classes")
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xb = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    beta = newton_logistic(xb, y, np.r_[np.full(xb.shape[1] - 1, l2), 0.0] + 1e-9, steps=30)
    return {"mu": mu, "sd": sd, "beta": beta}


def newton_logistic(xb: np.ndarray, y: np.ndarray, penalty: np.ndarray, steps: int) -> np.ndarray:
    """Coefficients of a logistic regression of ``y`` (0/1) on the columns of ``xb`` (a column of ones
    included), each coefficient penalised by ``penalty`` (L2), by ``steps`` Newton steps from zero."""
    beta = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-xb @ beta))
        grad = xb.T @ (p - y) + penalty * beta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty)
        beta -= np.linalg.solve(hess, grad)
    return beta


def logistic(x: np.ndarray, lr: dict[str, np.ndarray]) -> np.ndarray:
    z = ((x - lr["mu"]) / lr["sd"]) @ lr["beta"][:-1] + lr["beta"][-1]
    return 1 / (1 + np.exp(-z))


def disorder_scores(model: Estimator, sequences: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """The three disorder heads (:data:`DISORDER_HEADS`) of a neural model for each sequence; a CNN gives
    them from one pass."""
    if hasattr(model, "_predict_heads"):
        return model._predict_heads(list(sequences), list(DISORDER_HEADS))
    heads = {h: model._predict_index(list(sequences), model.heads.index(h)) for h in DISORDER_HEADS}
    return [{h: heads[h][i] for h in DISORDER_HEADS} for i in range(len(sequences))]


class Stack(Estimator):
    """A disorder model, an optional extra model, and a logistic regression per stacked track."""

    family = "stack"
    params_class = StackParams

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self.base: Estimator | None = None
        self.extra: Estimator | None = None
        self.partner: Estimator | None = None

    def default_spec(self) -> FeatureSpec:
        return SEQUENCE_SPEC

    # ------------------------------------------------------------------ parts
    def set_parts(self, base: Estimator, extra: Estimator | None = None,
                  partner: Estimator | None = None) -> "Stack":
        missing = [h for h in DISORDER_HEADS if h not in getattr(base, "heads", [])]
        if missing:
            raise ModelError(f"a stack's base needs the heads {', '.join(DISORDER_HEADS)} (missing {', '.join(missing)})")
        self.base, self.extra, self.partner = base, extra, partner
        self._set_tracks()
        return self

    def parts(self) -> list[Estimator]:
        return [m for m in (self.base, self.extra, self.partner) if m is not None]

    def stacked_tracks(self) -> list[str]:
        return sorted({k.split(".")[1] for k in self.arrays if k.startswith("lr.")}, key=TRACKS.index)

    def _set_tracks(self) -> None:
        have = set(self.base.tracks) | set(self.stacked_tracks()) | set(self.extra.tracks if self.extra else ())
        self.tracks = tuple(t for t in TRACKS if t in have)

    def disorder_scores(self, sequences: Sequence[str]) -> list[dict[str, np.ndarray]]:
        return disorder_scores(self.base, sequences)

    def features(self, sequences: Sequence[str], scores: Sequence[dict] | None = None) -> list[np.ndarray]:
        """The regressions' inputs for each sequence (from the base's scores unless ``scores`` are given)."""
        scores = self.disorder_scores(sequences) if scores is None else scores
        rows = featurize_many(list(sequences), self.spec)  # every sequence's rows, one after the other
        ends = np.cumsum([len(s) for s in sequences])
        plddt = [None] * len(sequences)
        if self.params.plddt:
            if self.extra is None or "plddt" not in self.extra.tracks:
                raise ModelError("this stack uses a predicted pLDDT: its extra model needs the plddt track")
            plddt = self.extra.predict_proba(list(sequences), track="plddt")
        return [stack_features(sc, f, self.params.interactions, self.params.protein, pl)
                for sc, f, pl in zip(scores, np.split(rows, ends[:-1]), plddt)]

    # ------------------------------------------------------------------ training
    def fit_features(self, track: str, xs: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> "Stack":
        """Fit the regression of ``track`` on given features (e.g. from out-of-fold disorder scores)."""
        if track not in TRACKS or track in ("pdb", "nox"):
            raise ModelError(f"'{track}' cannot be a stacked track (the base serves pdb and nox)")
        for k, v in fit_logistic(xs, labels, self.params.l2).items():
            self.arrays[f"lr.{track}.{k}"] = v
        if self.base is not None:
            self._set_tracks()
        return self

    def fit(self, records: Sequence[Record], valid=None) -> "Stack":
        from . import load_model, model_folder

        if self.base is None:
            extra = load_model(model_folder(self.params.extra)) if self.params.extra else None
            partner = load_model(model_folder(self.params.partner)) if self.params.partner else None
            self.set_parts(load_model(model_folder(self.params.base)), extra, partner)
        by_track: dict[str, list[Record]] = {}
        for r in records:
            if r.labels is not None and r.track not in self.base.tracks:
                by_track.setdefault(r.track, []).append(r)
        if not by_track:
            raise ModelError("no labelled records of a track the base model lacks (e.g. binding, linker)")
        for track, recs in by_track.items():
            self.fit_features(track, self.features([r.sequence for r in recs]), [r.labels for r in recs])
        return self

    # ------------------------------------------------------------------ prediction
    def _predict(self, sequences, track):
        if f"lr.{track}.beta" in self.arrays:
            lr = {k: self.arrays[f"lr.{track}.{k}"] for k in ("mu", "sd", "beta")}
            out = [logistic(x, lr).astype(np.float32) for x in self.features(sequences)]
            if self.partner is not None and track in self.partner.tracks:
                out = [(a + b) / 2 for a, b in zip(out, self.partner._predict(sequences, track))]
            return out
        if track in self.base.tracks:
            return self.base._predict(sequences, track)
        return self.extra._predict(sequences, track)

    # ------------------------------------------------------------------ files
    def save(self, folder):
        folder = super().save(folder)
        self.base.save(Path(folder) / "base")
        if self.extra is not None:
            self.extra.save(Path(folder) / "extra")
        if self.partner is not None:
            self.partner.save(Path(folder) / "partner")
        return folder

    @classmethod
    def load(cls, folder):
        from . import load_model

        model = super().load(folder)
        extra, partner = Path(folder) / "extra", Path(folder) / "partner"
        model.base = load_model(Path(folder) / "base")
        model.extra = load_model(extra) if extra.is_dir() else None
        model.partner = load_model(partner) if partner.is_dir() else None
        if model.params.partner and model.partner is None:
            raise ModelError(f"{folder}: the stack averages with a partner model, but has no partner/ folder")
        missing = [t for t in model.tracks if t not in model.base.tracks and f"lr.{t}.beta" not in model.arrays
                   and not (model.extra and t in model.extra.tracks)]
        if missing:
            raise ModelError(f"{folder}: no part of the model serves the track(s) {', '.join(missing)}")
        return model
