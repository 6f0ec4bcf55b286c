"""CAID-style metrics: residues pooled over all proteins, unknown (``-``) residues excluded.

Threshold-free: ROC AUC, average precision (as scikit-learn defines it) and F-max with its threshold.
At a threshold: MCC, balanced accuracy, F1, precision, recall, specificity. Per-protein means, bootstrap
confidence intervals over proteins (also paired, for the difference of two predictors), and the competition
score (F1 of class 1 over all residues).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError


@dataclass
class Pooled:
    """Labels, scores and protein index of every labelled residue, sorted by decreasing score."""

    y: np.ndarray
    scores: np.ndarray
    protein: np.ndarray
    n_proteins: int
    last_of_tie: np.ndarray  # indices (in sorted order) where a run of equal scores ends
    calls: np.ndarray | None = None  # 0/1 calls in the same order, when given


def pool(labels: list[np.ndarray], scores: list[np.ndarray], ids: list[str] | None = None,
         calls: list[np.ndarray] | None = None) -> Pooled:
    """Pool proteins into one residue set, dropping unknown labels; checks lengths."""
    if len(labels) != len(scores) or (calls is not None and len(calls) != len(labels)):
        raise InputError(f"{len(labels)} label vectors but {len(scores)} score vectors")
    ys, ss, ps, cs = [], [], [], []
    for i, (lab, sc) in enumerate(zip(labels, scores)):
        lab, sc = np.asarray(lab), np.asarray(sc, dtype=np.float64)
        if lab.shape != sc.shape or (calls is not None and np.shape(calls[i]) != lab.shape):
            name = ids[i] if ids else str(i)
            raise InputError(f"record '{name}': {sc.size} scores for {lab.size} labelled residues")
        keep = lab >= 0
        ys.append(lab[keep])
        ss.append(sc[keep])
        ps.append(np.full(int(keep.sum()), i, dtype=np.int32))
        if calls is not None:
            cs.append(np.asarray(calls[i]).astype(bool)[keep])
    y = np.concatenate(ys).astype(np.int8) if ys else np.zeros(0, np.int8)
    s = np.concatenate(ss) if ss else np.zeros(0)
    p = np.concatenate(ps) if ps else np.zeros(0, np.int32)
    if np.isnan(s).any():
        raise InputError("scores contain NaN")
    order = np.argsort(-s, kind="mergesort")
    y, s, p = y[order], s[order], p[order]
    c = (np.concatenate(cs) if cs else np.zeros(0, bool))[order] if calls is not None else None
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1] if s.size else np.zeros(0, np.int64)
    return Pooled(y, s, p, len(labels), last, c)


def _counts(pooled: Pooled, weights: np.ndarray | None = None):
    """Cumulative true and false positives at each distinct threshold (high to low)."""
    w = np.ones(pooled.y.size) if weights is None else weights
    tp = np.cumsum(w * (pooled.y == 1))[pooled.last_of_tie]
    fp = np.cumsum(w * (pooled.y == 0))[pooled.last_of_tie]
    return tp, fp, pooled.scores[pooled.last_of_tie]


def _curve_metrics(tp, fp, thresholds) -> dict:
    pos, neg = (tp[-1], fp[-1]) if tp.size else (0.0, 0.0)
    if pos == 0 or neg == 0:
        return {"auc": float("nan"), "ap": float("nan"), "fmax": float("nan"), "fmax_threshold": float("nan")}
    tpr = np.r_[0.0, tp / pos]
    fpr = np.r_[0.0, fp / neg]
    auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
    precision = tp / np.maximum(tp + fp, 1e-300)
    recall = tp / pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0)
    best = int(np.argmax(f1))
    return {"auc": auc, "ap": ap, "fmax": float(f1[best]), "fmax_threshold": float(thresholds[best])}


def curve_counts(pooled: Pooled) -> tuple[np.ndarray, np.ndarray, dict]:
    """Cumulative true and false positives over decreasing thresholds, and the curve metrics (for plots)."""
    tp, fp, thresholds = _counts(pooled)
    return tp, fp, _curve_metrics(tp, fp, thresholds)


def confusion(y: np.ndarray, calls: np.ndarray) -> dict:
    """Confusion-matrix metrics of 0/1 calls: MCC, balanced accuracy, F1, precision, recall, specificity."""
    y = np.asarray(y).astype(bool)
    c = np.asarray(calls).astype(bool)
    tp = float(np.sum(y & c))
    fp = float(np.sum(~y & c))
    fn = float(np.sum(y & ~c))
    tn = float(np.sum(~y & ~c))

    def ratio(a, b):
        return a / b if b else 0.0

    precision, recall, specificity = ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(tn, tn + fp)
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "mcc": float((tp * tn - fp * fn) / denom) if denom else 0.0,
        "bacc": (recall + specificity) / 2,
        "f1": ratio(2 * precision * recall, precision + recall),
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
    }


def competition_f1(labels: list[np.ndarray], calls: list[np.ndarray]) -> float:
    """The competition score: F1 of the disordered class over all labelled residues of all proteins."""
    y = np.concatenate([np.asarray(lab) for lab in labels])
    c = np.concatenate([np.asarray(cl) for cl in calls])
    if y.shape != c.shape:
        raise InputError("labels and calls differ in length")
    keep = y >= 0
    return confusion(y[keep] == 1, c[keep])["f1"]


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of one residue set (unknown labels, -1, are dropped)."""
    return _curve_metrics(*_counts(pool([y], [scores])))["auc"]


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one residue set, as scikit-learn computes it."""
    return _curve_metrics(*_counts(pool([y], [scores])))["ap"]


def pooled_metrics(labels: list[np.ndarray], scores: list[np.ndarray], threshold: float = 0.5,
                   calls: list[np.ndarray] | None = None, ids: list[str] | None = None) -> dict:
    """All pooled metrics; threshold metrics use ``calls`` if given, else ``scores >= threshold``."""
    pooled = pool(labels, scores, ids)
    out = _curve_metrics(*_counts(pooled))
    if calls is None:
        calls = [np.asarray(s) >= threshold for s in scores]
    y = np.concatenate([np.asarray(lab) for lab in labels])
    c = np.concatenate([np.asarray(cl) for cl in calls]).astype(bool)
    keep = y >= 0
    out.update(confusion(y[keep] == 1, c[keep]))
    out["competition_f1"] = out["f1"]
    out["threshold"] = threshold
    out["residues"] = int(keep.sum())
    out["disordered"] = int((y == 1).sum())
    out["proteins"] = len(labels)
    return out


def per_protein(labels: list[np.ndarray], scores: list[np.ndarray], calls: list[np.ndarray],
                ids: list[str] | None = None) -> list[dict]:
    """Metrics of each protein separately (AUC is NaN where a protein has only one class)."""
    rows = []
    for i, (lab, sc, cl) in enumerate(zip(labels, scores, calls)):
        lab, sc, cl = np.asarray(lab), np.asarray(sc), np.asarray(cl).astype(bool)
        keep = lab >= 0
        row = {"id": ids[i] if ids else str(i), "residues": int(keep.sum()),
               "disordered": int((lab == 1).sum())}
        if keep.any():
            row["auc"] = roc_auc(lab, sc)
            row.update(confusion(lab[keep] == 1, cl[keep]))
        rows.append(row)
    return rows


def _resampled_proteins(rng: np.random.Generator, n: int) -> np.ndarray:
    """How often each of ``n`` proteins is drawn in one bootstrap resample (as float weights)."""
    return np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)


def bootstrap(labels: list[np.ndarray], scores: list[np.ndarray], threshold: float = 0.5,
              n: int = 200, seed: int = 0, level: float = 0.95, calls: list[np.ndarray] | None = None) -> dict:
    """Percentile confidence intervals of AUC, AP, F-max, F1 and MCC, resampling proteins.

    F1 and MCC are those of ``calls`` when given, else of ``scores >= threshold``.
    """
    pooled = pool(labels, scores, calls=calls)
    rng = np.random.default_rng(seed)
    call = pooled.calls if pooled.calls is not None else pooled.scores >= threshold
    draws = {"auc": [], "ap": [], "fmax": [], "f1": [], "mcc": []}
    for _ in range(n):
        w = _resampled_proteins(rng, pooled.n_proteins)[pooled.protein]
        curve = _curve_metrics(*_counts(pooled, w))
        pos, neg = w * (pooled.y == 1), w * (pooled.y == 0)
        tp, fp = pos[call].sum(), neg[call].sum()
        fn, tn = pos.sum() - tp, neg.sum() - fp
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        draws["auc"].append(curve["auc"])
        draws["ap"].append(curve["ap"])
        draws["fmax"].append(curve["fmax"])
        draws["f1"].append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        draws["mcc"].append((tp * tn - fp * fn) / denom if denom else 0.0)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {k: (float(np.nanpercentile(v, lo)), float(np.nanpercentile(v, hi))) for k, v in draws.items()}


def paired_bootstrap(labels: list[np.ndarray], scores_a: list[np.ndarray], scores_b: list[np.ndarray],
                     n: int = 200, seed: int = 0, level: float = 0.95) -> dict:
    """Differences a - b of AUC and AP over the same resamplings of proteins.

    Returns, per metric, the observed difference, its percentile confidence interval and the fraction of
    resamplings in which ``a`` scores higher: a paired test of two predictors on the same proteins.
    """
    pa, pb = pool(labels, scores_a), pool(labels, scores_b)
    rng = np.random.default_rng(seed)
    observed = {k: _curve_metrics(*_counts(pa))[k] - _curve_metrics(*_counts(pb))[k] for k in ("auc", "ap")}
    diffs = {"auc": [], "ap": []}
    for _ in range(n):
        counts = _resampled_proteins(rng, pa.n_proteins)
        ca, cb = _curve_metrics(*_counts(pa, counts[pa.protein])), _curve_metrics(*_counts(pb, counts[pb.protein]))
        for k in diffs:
            diffs[k].append(ca[k] - cb[k])
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {k: {"diff": float(observed[k]), "low": float(np.nanpercentile(v, lo)),
                "high": float(np.nanpercentile(v, hi)), "a_higher": float(np.mean(np.asarray(v) > 0))}
            for k, v in diffs.items()}


def match(refs: dict, preds: dict, allow_missing: bool = False):
    """Pair reference records with predictions by id: lists of ids, labels, scores, and calls.

    A prediction is an array of scores or an object with ``scores`` and ``calls`` (None when the file has
    no calls); the calls list is None unless every matched protein has calls.
    """
    ids, labels, scores, calls = [], [], [], []
    for rid, rec in refs.items():
        if rid not in preds:
            if allow_missing:
                continue
            raise InputError(f"record '{rid}': in the reference but not in the predictions")
        sc = np.asarray(getattr(preds[rid], "scores", preds[rid]), dtype=np.float64)
        if sc.size != rec.labels.size:
            raise InputError(f"record '{rid}': {sc.size} predicted scores for {rec.labels.size} residues")
        ids.append(rid)
        labels.append(rec.labels)
        scores.append(sc)
        calls.append(getattr(preds[rid], "calls", None))
    if not ids:
        raise InputError("no protein of the reference has a prediction")
    return ids, labels, scores, (None if any(c is None for c in calls) else calls)
