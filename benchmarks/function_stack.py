"""Binding and linker regions stacked on out-of-fold disorder scores: a logistic regression per track.

Every protein of the function files (binding, binding within IDRs, linker: all DisProt entries that are
also in the NOX training file) gets its disorder scores (``pdb``, ``nox`` and ``teacher`` heads) from the
model of its own fold of ``benchmarks/fold_recipe.py`` (a model that never saw its labels). Per residue, the
stacker sees those three scores, their means over 9, 21, 51 and 151 residues, their dips below the 21-, 51-
and 151-residue means, a few sequence features (composition, scales, entropy, charge, position), and, with
``interactions``, those sequence features times the ``nox`` score and its 21-residue mean (hydrophobic
*and* disordered is what a binding region looks like). An L2-penalised logistic regression per fold is fitted
on the other folds' proteins, so every figure is out of fold, beside the obvious baseline: the out-of-fold
``nox`` score itself.

    python benchmarks/function_stack.py --runs runs/recipe --candidate plain32-balanced-e6 \\
        --binding ../shared/data/train_disprot_binding.fasta --binding-idr ../shared/data/train_disprot_binding_idr.fasta \\
        --linker ../shared/data/train_disprot_linker.fasta
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from idrkit.errors import InputError, run_main
from idrkit.features.encoders import FeatureSpec, featurize_many
from idrkit.io import read_records
from idrkit.metrics import pooled_metrics
from idrkit.models import load_model

HEADS = ("pdb", "nox", "teacher")
SEQUENCE = FeatureSpec(composition_windows=[15], scale_windows=[9, 21], entropy_windows=[15], charge_windows=[15],
                       one_hot=False, position=True)


def window_mean(x: np.ndarray, w: int) -> np.ndarray:
    pad = np.pad(x, (w // 2, w // 2), mode="edge")
    return np.convolve(pad, np.ones(w) / w, mode="valid")


def residue_features(scores: dict[str, np.ndarray], seq_feats: np.ndarray, interactions: bool) -> np.ndarray:
    cols = []
    for h in HEADS:
        x = scores[h]
        cols += [x] + [window_mean(x, w) for w in (9, 21, 51, 151)] + [x - window_mean(x, w) for w in (21, 51, 151)]
    out = np.hstack([np.stack(cols, 1), seq_feats])
    if interactions:
        nox, nox21 = scores["nox"][:, None], window_mean(scores["nox"], 21)[:, None]
        out = np.hstack([out, seq_feats * nox, seq_feats * nox21])
    return out


def fit_logistic(xs: list[np.ndarray], ys: list[np.ndarray], l2: float):
    """An L2-penalised logistic regression (Newton's method) on standardised features; returns predict(x)."""
    x, y = np.concatenate(xs), np.concatenate(ys)
    keep = y >= 0
    x, y = x[keep], y[keep].astype(np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xb = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    beta = np.zeros(xb.shape[1])
    penalty = np.r_[np.full(xb.shape[1] - 1, l2), 0.0]
    for _ in range(30):
        p = 1 / (1 + np.exp(-xb @ beta))
        grad = xb.T @ (p - y) + penalty * beta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        beta -= np.linalg.solve(hess, grad)
    return lambda z: 1 / (1 + np.exp(-(np.hstack([(z - mu) / sd, np.ones((len(z), 1))]) @ beta)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="a fold_recipe.py output folder")
    ap.add_argument("--candidate", required=True, help="whose fold models give the disorder scores")
    ap.add_argument("--binding", required=True)
    ap.add_argument("--binding-idr", required=True)
    ap.add_argument("--linker", required=True)
    ap.add_argument("--l2", type=float, nargs="+", default=[1.0, 10.0])
    args = ap.parse_args(argv)
    runs = Path(args.runs)
    if not (runs / "folds.json").is_file():
        raise InputError(f"{runs}: no folds.json (not a fold_recipe.py output)")
    folds = json.loads((runs / "folds.json").read_text())
    fold_of = {f["id"].split("|")[0]: f["fold"] for f in folds if f["track"] == "nox"}
    k = 1 + max(f["fold"] for f in folds)
    models = [load_model(runs / f"{args.candidate}-fold{i}") for i in range(k)]
    print(f"disorder scores: {args.candidate}, {k} folds; logistic regression per fold on the other folds")
    print(f"{'file':<34} {'proteins':>8} {'nox score':>10} " + " ".join(
        f"{f'LR l2={l2:g}' + (' +int' if inter else ''):>16}" for inter in (False, True) for l2 in args.l2))
    for path in (args.binding, args.binding_idr, args.linker):
        recs = read_records(path, require_labels=True)
        missing = [r.id for r in recs if r.id.split("|")[0] not in fold_of]
        if missing:
            raise InputError(f"{path}: '{missing[0]}' is in no fold of {runs} (not a NOX training protein)")
        fold = np.array([fold_of[r.id.split("|")[0]] for r in recs])
        labels = [r.labels for r in recs]
        scores: list = [None] * len(recs)
        for i in range(k):
            idx = np.flatnonzero(fold == i)
            seqs = [recs[j].sequence for j in idx]
            heads = {h: models[i]._predict_index(seqs, models[i].heads.index(h)) for h in HEADS}
            for n, j in enumerate(idx):
                scores[j] = {h: heads[h][n] for h in HEADS}
        seq_feats = [featurize_many([r.sequence], SEQUENCE) for r in recs]
        cells = [f"{pooled_metrics(labels, [s['nox'] for s in scores])['auc']:>10.4f}"]
        for inter in (False, True):
            x = [residue_features(s, f, inter) for s, f in zip(scores, seq_feats)]
            for l2 in args.l2:
                oof: list = [None] * len(recs)
                for i in range(k):
                    train = [j for j in range(len(recs)) if fold[j] != i]
                    predict = fit_logistic([x[j] for j in train], [labels[j] for j in train], l2)
                    for j in np.flatnonzero(fold == i):
                        oof[j] = predict(x[j])
                cells.append(f"{pooled_metrics(labels, oof)['auc']:>16.4f}")
        print(f"{Path(path).name:<34} {len(recs):>8} " + " ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "function_stack.py"))
