"""Supervised, distilled and distilled-then-fine-tuned students on both definitions of disorder, one table.

For every neural family asked for, four recipes are trained and scored beside metapredict v3 and v2:

- ``supervised``: the labelled files only (both tracks, ``pdb`` and ``nox`` heads);
- ``distilled``: a teacher's scores on unlabelled proteins only (one ``teacher`` head serves both tracks,
  threshold 0.5 as for metapredict);
- ``distil+ft``: the distilled student fine-tuned on the labelled files (its new heads start from the
  teacher head);
- ``distil+joint``: the distilled student fine-tuned on the labelled files and, at the same time, on the
  teacher's scores for a random subset of the unlabelled proteins (``joint_unlabelled`` per family), the
  recipe of the shipped default.

The labelled proteins of both tracks are clustered together with MMseqs2 at 30% identity and split into
``--folds`` folds (no cluster in two folds). For each fold ``k`` a student is trained on the labelled proteins
outside fold ``k`` (10% of those, again by cluster, choose early stopping and thresholds) and predicts the
NOX proteins of fold ``k``: the ``nox`` columns pool these held-out predictions over all folds, each fold
called at its own model's threshold. The ``pdb`` columns are the validation file (never trained on)
scored by every fold's model, as mean +- standard deviation over the folds. The distilled student sees no
labels, so one model serves every fold. metapredict gets the same proteins (scores from the teacher cache).

``--model DIR`` adds rows for models trained elsewhere, scored as they are (e.g. the shipped default, the
full-scale version of a recipe): the ``pdb`` columns on the validation file (a model that shares sequences
with it is refused), the ``nox`` columns only when none of the held-out NOX proteins is in its training
data or in that of the model it was warm-started from (stored sequence hashes), and left blank otherwise.

Trained models are kept under ``--work`` (``FAMILY-RECIPE-foldK``) and reused when present, so a run
can be resumed or split over processes (``--families cnn`` in one, ``--families transformer`` in another);
every figure is computed afresh from the models on each run.

    D=../shared/data
    python benchmarks/students.py --families cnn transformer --folds 3 --work runs/students \\
        --train pdb:$D/train_disorder_pdb.fasta pdb:$D/caid1_disorder_pdb.fasta nox:$D/train_disprot_nox.fasta \\
        --valid $D/caid2_disorder_pdb.fasta --unlabelled $D/unlabelled/*.fasta --markdown docs/students.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from idrkit.errors import InputError
from idrkit.metrics import pooled_metrics
from idrkit.models import get_family, load_model
from idrkit.models.base import resolve_threshold
from idrkit.io import read_records
from idrkit.teachers import teacher_scores
from idrkit.train import fit_with_holdout, homology_folds, load_training, shared_sequences, teacher_records

RECIPES = ("supervised", "distilled", "distil+ft", "distil+joint")
METRICS = ("auc", "ap", "fmax", "f1", "mcc")

# per family: parameters of every recipe, overrides per recipe, and how many unlabelled proteins the
# distilled student learns from (0 = all); kept small enough for 2 CPU cores
PARAMS = {
    "cnn": {"base": {"channels": 32, "layers": 8, "kernel": 5, "progress": False},
            "supervised": {"epochs": 8, "patience": 2},
            "distilled": {"epochs": 2},
            "distil+ft": {"epochs": 3, "patience": 2, "lr": 5e-4},
            "distil+joint": {"epochs": 3, "patience": 2, "lr": 5e-4}, "joint_unlabelled": 6000},
    "transformer": {"base": {"channels": 64, "layers": 4, "crop": 512, "progress": False}, "unlabelled": 6000,
                    "supervised": {"epochs": 4, "patience": 2},
                    "distilled": {"epochs": 2},
                    "distil+ft": {"epochs": 2, "patience": 2, "lr": 5e-4},
                    "distil+joint": {"epochs": 2, "patience": 2, "lr": 5e-4}, "joint_unlabelled": 2000},
    "bilstm": {"base": {"channels": 32, "layers": 4, "crop": 512, "progress": False}, "unlabelled": 6000,
               "supervised": {"epochs": 4, "patience": 2},
               "distilled": {"epochs": 1},
               "distil+ft": {"epochs": 2, "patience": 2, "lr": 5e-4},
               "distil+joint": {"epochs": 2, "patience": 2, "lr": 5e-4}, "joint_unlabelled": 2000},
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fit_labelled(family: str, params: dict, records, seed: int, folder: Path, soft=()):
    """Train on labelled records (10% held out by cluster for early stopping and thresholds) and any
    teacher-scored records, save."""
    t0 = time.time()
    model, train, tune = fit_with_holdout(family, params, records, soft, holdout=0.1, seed=seed)
    model.meta["benchmark"] = {"trained_on": len(train), "tuned_on": len(tune), "seconds": time.time() - t0}
    model.save(folder)
    return model


def get_or_train(folder: Path, train_fn):
    if (folder / "model.json").exists():
        log(f"reusing {folder}")
        return load_model(folder)
    log(f"training {folder}")
    t0 = time.time()
    model = train_fn()
    log(f"trained {folder} in {time.time() - t0:.0f} s")
    return model


def fold_models(family: str, recipe: str, args, labelled, folds, soft):
    """The model of each fold for one recipe (the distilled model is shared by all folds)."""
    spec = PARAMS[family]
    params = {**spec["base"], **spec[recipe], "seed": args.seed, **args.set}
    work = Path(args.work)
    if recipe == "distilled":
        folder = work / f"{family}-distilled"

        def train():
            t0 = time.time()
            n = args.max_unlabelled if args.max_unlabelled is not None else spec.get("unlabelled", 0)
            records = soft(n)
            model = get_family(family)(**params).fit(records)
            model.meta["benchmark"] = {"unlabelled": len(records), "seconds": time.time() - t0}
            model.save(folder)
            return model

        model = get_or_train(folder, train)
        return [model] * args.folds
    if recipe in ("distil+ft", "distil+joint"):
        fold_models(family, "distilled", args, labelled, folds, soft)  # make sure the start point exists
        params["init_from"] = str(work / f"{family}-distilled")
    models = []
    for k in range(args.folds):
        train_k = [r for r, f in zip(labelled, folds) if f != k]
        folder = work / f"{family}-{recipe}-fold{k}"
        extra = []
        if recipe == "distil+joint" and not (folder / "model.json").exists():
            extra = soft(spec.get("joint_unlabelled", 0))
        models.append(get_or_train(folder, lambda: fit_labelled(family, params, train_k, args.seed, folder, extra)))
    return models


def thresholds_of(model) -> tuple[float, float]:
    """A model's (pdb, nox) thresholds, 0.5 where it has none (e.g. a distilled-only model)."""
    return resolve_threshold(model, "pdb"), resolve_threshold(model, "nox")


def lineage(model) -> list:
    """The model and every model of its warm-start chain whose folder still exists."""
    out, start = [model], model.meta.get("started_from")
    while start and (Path(start["path"]) / "model.json").exists():
        out.append(load_model(start["path"]))
        start = start.get("started_from")
    return out


def trained_model_row(folder: str, valid_recs, nox_by_fold, folds: int) -> dict:
    """A row for a model trained elsewhere; nox columns are NaN when the NOX proteins were trained on."""
    model = load_model(folder)
    valid_seqs = [r.sequence for r in valid_recs]
    chain = lineage(model)
    for m in chain:
        if "train_sequence_hash" not in m.arrays:
            raise InputError(f"{folder}: a model in its lineage keeps no record of its training sequences "
                             "(train it with idrkit train or idrkit distil)")
    if any(shared_sequences(m, valid_seqs) for m in chain):
        raise InputError(f"{folder}: this model was trained on sequences of the validation file")
    thr = thresholds_of(model)
    vs = model.predict_proba(valid_seqs, track="pdb")
    nox_seqs = [r.sequence for recs in nox_by_fold for r in recs]
    leaked = len(set().union(*[shared_sequences(m, nox_seqs) for m in chain]))
    if leaked or "nox" not in model.tracks:
        why = f"{leaked} held-out NOX proteins are in its training data" if leaked else "it has no nox output"
        log(f"{folder}: {why}; nox columns left blank")
        return score_row(valid_recs, None, [vs] * folds, None, [thr] * folds)
    nox_scores = [model.predict_proba([r.sequence for r in recs], track="nox") for recs in nox_by_fold]
    return score_row(valid_recs, nox_by_fold, [vs] * folds, nox_scores, [thr] * folds)


def score_row(valid_recs, nox_by_fold, valid_scores, nox_scores, thresholds) -> dict:
    """pdb: mean and sd over folds on the validation file; nox: held-out folds pooled.

    ``valid_scores[k]`` and ``nox_scores[k]`` are fold ``k``'s model's scores for the validation proteins
    and for the NOX proteins of fold ``k``; ``thresholds[k]`` is its (pdb, nox) threshold pair. Without
    NOX scores (``None``) the nox columns are NaN.
    """
    out = {}
    per_fold = [pooled_metrics([r.labels for r in valid_recs], sc, threshold=thr[0])
                for sc, thr in zip(valid_scores, thresholds)]
    for m in METRICS:
        vals = np.array([f[m] for f in per_fold])
        out[f"pdb_{m}"] = float(vals.mean())
        out[f"pdb_{m}_sd"] = float(vals.std()) if len(vals) > 1 else 0.0
    if nox_scores is None:
        out.update({f"nox_{m}": float("nan") for m in METRICS})
        out["nox_proteins"] = out["nox_residues"] = 0
        return out
    labels = [r.labels for recs in nox_by_fold for r in recs]
    scores = [s for fold in nox_scores for s in fold]
    calls = [s >= thr[1] for fold, thr in zip(nox_scores, thresholds) for s in fold]
    nox = pooled_metrics(labels, scores, calls=calls)
    out.update({f"nox_{m}": float(nox[m]) for m in METRICS})
    out["nox_proteins"], out["nox_residues"] = nox["proteins"], nox["residues"]
    return out


def parse_set(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["cnn", "transformer"], choices=sorted(PARAMS))
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    ap.add_argument("--train", nargs="+", required=True, help="labelled files, prefixed pdb: or nox:")
    ap.add_argument("--valid", required=True, help="labelled validation file (pdb track), never trained on")
    ap.add_argument("--unlabelled", nargs="+", required=True)
    ap.add_argument("--teacher", default="metapredict-v3")
    ap.add_argument("--max-unlabelled", type=int, default=None,
                    help="a random subset of the unlabelled proteins for every family (default: per family)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/students")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override a parameter of every recipe, e.g. max_steps_per_epoch=2 for a smoke run")
    ap.add_argument("--ensemble", action="store_true",
                    help="add, per recipe, the mean of the families' scores (fold by fold)")
    ap.add_argument("--model", nargs="+", default=[], metavar="DIR",
                    help="models trained elsewhere (e.g. the shipped default), scored as they are")
    ap.add_argument("--no-baselines", action="store_true", help="skip the metapredict rows")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    args.set = dict(parse_set(kv) for kv in args.set)

    labelled, _ = load_training(args.train)
    folds = homology_folds(labelled, k=args.folds, seed=args.seed)
    nox_by_fold = [[r for r, f in zip(labelled, folds) if f == k and r.track == "nox"] for k in range(args.folds)]
    valid_recs = read_records(args.valid, require_labels=True)
    log(f"{len(labelled)} labelled proteins in {args.folds} folds; NOX proteins per fold: "
        f"{[len(x) for x in nox_by_fold]}")
    cache = {}

    def soft(n: int):
        if n not in cache:
            cache[n] = teacher_records(args.teacher, args.unlabelled, n, args.seed)[0]
        return cache[n]

    rows = []
    valid_seqs = [r.sequence for r in valid_recs]
    nox_seqs = [[r.sequence for r in recs] for recs in nox_by_fold]
    preds: dict[tuple, list[np.ndarray]] = {}  # (family, recipe, fold, "pdb" | "nox") -> scores
    members: dict[str, list] = {}  # recipe -> [(family, thresholds)]
    for family in args.families:
        for recipe in args.recipes:
            models = fold_models(family, recipe, args, labelled, folds, soft)
            thresholds = [thresholds_of(m) for m in models]
            for k, m in enumerate(models):
                shared = recipe == "distilled" and k > 0  # one distilled model serves every fold
                preds[family, recipe, k, "pdb"] = (preds[family, recipe, 0, "pdb"] if shared
                                                   else m.predict_proba(valid_seqs, track="pdb"))
                preds[family, recipe, k, "nox"] = m.predict_proba(nox_seqs[k], track="nox")
            row = score_row(valid_recs, nox_by_fold, [preds[family, recipe, k, "pdb"] for k in range(args.folds)],
                            [preds[family, recipe, k, "nox"] for k in range(args.folds)], thresholds)
            rows.append({"predictor": f"{family} {recipe}", **row})
            members.setdefault(recipe, []).append((family, thresholds))
            log(f"{family} {recipe}: pdb AUC {row['pdb_auc']:.4f} nox AUC {row['nox_auc']:.4f}")
    if args.ensemble:
        # the mean of the families' scores, fold by fold, at the mean of their thresholds
        for recipe, fams in members.items():
            if len(fams) < 2:
                continue

            def mean_of(k, track, fams=fams, recipe=recipe):
                return [np.mean(arrs, axis=0) for arrs in zip(*[preds[f, recipe, k, track] for f, _ in fams])]

            thresholds = [tuple(np.mean([t[k][i] for _, t in fams]) for i in (0, 1)) for k in range(args.folds)]
            row = score_row(valid_recs, nox_by_fold, [mean_of(k, "pdb") for k in range(args.folds)],
                            [mean_of(k, "nox") for k in range(args.folds)], thresholds)
            rows.append({"predictor": f"mean {recipe}", **row})
    for folder in args.model:
        rows.append({"predictor": folder, **trained_model_row(folder, valid_recs, nox_by_fold, args.folds)})
    if not args.no_baselines:
        for teacher in ("metapredict-v3", "metapredict-v2"):
            vs = teacher_scores(teacher, valid_seqs)
            row = score_row(valid_recs, nox_by_fold, [vs] * args.folds,
                            [teacher_scores(teacher, seqs) for seqs in nox_seqs], [(0.5, 0.5)] * args.folds)
            rows.append({"predictor": teacher, **row})
    print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def print_table(rows, args) -> None:
    width = max([24] + [len(r["predictor"]) + 1 for r in rows])
    head = f"{'predictor':<{width}}" + "".join(f"{'pdb ' + m:>15}" for m in METRICS) + "".join(
        f"{'nox ' + m:>9}" for m in METRICS)
    print(f"pdb: {Path(args.valid).name}, mean +- sd over the {args.folds} fold models; "
          f"nox: {args.folds} MMseqs2 folds (30% identity) of the NOX proteins, held-out predictions pooled")
    print(head)
    print("-" * len(head))
    md = ["| predictor | " + " | ".join(f"pdb {m}" for m in METRICS) + " | " + " | ".join(f"nox {m}" for m in METRICS)
          + " |", "|---" * (1 + 2 * len(METRICS)) + "|"]
    for r in rows:
        pdb = [f"{r[f'pdb_{m}']:.4f}±{r[f'pdb_{m}_sd']:.4f}" for m in METRICS]
        nox = [f"{r[f'nox_{m}']:.4f}" if np.isfinite(r[f"nox_{m}"]) else "-" for m in METRICS]
        print(f"{r['predictor']:<{width}}" + "".join(f"{v:>15}" for v in pdb) + "".join(f"{v:>9}" for v in nox))
        md.append(f"| {r['predictor']} | " + " | ".join(pdb) + " | " + " | ".join(nox) + " |")
    scored = [r for r in rows if r["nox_proteins"]]
    if any(not r["nox_proteins"] for r in rows):
        print("-: not scored (the model has no nox output, or was trained on the held-out NOX proteins)")
    if scored:
        n = scored[0]
        print(f"nox held-out set: {n['nox_proteins']} proteins, {n['nox_residues']} labelled residues")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    from idrkit.errors import run_main

    sys.exit(run_main(main, "students.py"))
