"""Binding and linker regions stacked on out-of-fold disorder scores: a logistic regression per track.

Every protein of the function files (binding, binding within IDRs, linker: all DisProt entries that are
also in the NOX training file) gets its disorder scores (``pdb``, ``nox`` and ``teacher`` heads) from the
model of its own fold of ``benchmarks/fold_recipe.py`` (a model that never saw its labels). Per residue, the
stacker sees those three scores, their means over 9, 21, 51 and 151 residues, their dips below the 21-, 51-
and 151-residue means, a few sequence features (composition, scales, entropy, charge, position), and, with
``interactions``, those sequence features times the ``nox`` score and its 21-residue mean (hydrophobic
*and* disordered is what a binding region looks like); ``--protein`` and ``--plddt SOURCE`` add variants with
the protein's length, mean score and disordered runs, and with a predicted pLDDT (``region_features``,
``plddt_features`` of :mod:`idrkit.models.stack`). An L2-penalised logistic regression per fold is fitted
on the other folds' proteins, so every figure is out of fold, beside the obvious baseline: the out-of-fold
``nox`` score itself.

Out of fold is not enough for a stacker. Without ``--nested``, the regression for held-out fold ``i`` learns
from the other folds' scores, which come from fold models that were trained on fold ``i``'s disorder labels;
a regression free to weigh the three correlated heads against each other learns how a fold model's scores
differ on proteins it did not see, and applied to fold ``i`` that difference carries fold ``i``'s own fit
(binding AUC 0.815 flattered against 0.786 nested, at l2=10). With ``--nested PAIRS`` (a ``fold_recipe.py
--pairs`` output of the same candidate), the regression for fold ``i`` learns from the scores of models that
left out fold ``i`` and the training protein's own fold, as the shipped regressions learn from out-of-fold
scores and meet the scores of a model that saw more: the honest estimate, and the one to choose on.

    python benchmarks/function_stack.py --runs runs/rec-cpu --candidate rec32-balanced-e6 \\
        --binding ../shared/data/train_disprot_binding.fasta --binding-idr ../shared/data/train_disprot_binding_idr.fasta \\
        --linker ../shared/data/train_disprot_linker.fasta --nested runs/rec-pairs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from idrkit.errors import InputError, run_main
from idrkit.io import atomic_folder, check_model_folder_output
from idrkit.features.encoders import featurize_many
from idrkit.io import read_records
from idrkit.metrics import pooled_metrics
from idrkit.models import load_model
from idrkit.models.stack import SEQUENCE_SPEC, Stack, disorder_scores, fit_logistic, logistic, stack_features
from idrkit.train import CALLS_RULE, file_sha256, read_folds, threshold_and_figures, write_card


def plddt_of(source: str, sequences: list[str]) -> list[np.ndarray]:
    """Predicted pLDDT (0-100) of every sequence: metapredict's (cached teacher scores) or a model's."""
    if source == "metapredict-plddt":
        from idrkit.teachers import teacher_scores

        return teacher_scores(source, sequences)
    return load_model(source).predict_proba(sequences, track="plddt")


def out_of_fold(x, labels, fold, k: int, l2: float, inner: dict | None = None) -> list[np.ndarray]:
    """Scores of every protein from a regression fitted on the proteins of the other folds: on their features
    ``x`` or, nested, on ``inner[i][j]`` (protein ``j``'s features from a model that saw neither fold ``i``
    nor its own) when the held-out fold is ``i``."""
    oof: list = [None] * len(x)
    for i in range(k):
        train = [j for j in range(len(x)) if fold[j] != i]
        lr = fit_logistic([x[j] if inner is None else inner[i][j] for j in train], [labels[j] for j in train], l2)
        for j in np.flatnonzero(fold == i):
            oof[j] = logistic(x[j], lr)
    return oof


def pair_scores(pairs: Path, candidate: str, fold: np.ndarray, k: int, sequences: list[str]) -> dict:
    """``{i: {j: scores}}``: for every held-out fold ``i``, the disorder scores of each protein ``j`` outside
    it from the model that left out fold ``i`` and ``j``'s own fold (``fold_recipe.py --pairs``)."""
    out: dict = {i: {} for i in range(k)}
    for a in range(k):
        for b in range(a + 1, k):
            folder = pairs / f"{candidate}-fold{a}-{b}"
            if not folder.is_dir():
                raise InputError(f"{folder}: missing (make it with benchmarks/fold_recipe.py train --pairs)")
            model = load_model(folder)
            for held, other in ((a, b), (b, a)):  # scores of fold `other`, for the stacker without fold `held`
                idx = np.flatnonzero(fold == other)
                out[held].update(zip(idx.tolist(), disorder_scores(model, [sequences[j] for j in idx])))
    return out


GBDT = dict(num_leaves=15, learning_rate=0.05, n_estimators=300, min_child_samples=200, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0)


def out_of_fold_gbdt(x, scores, labels, fold, k: int) -> list[np.ndarray]:
    """Out-of-fold scores of a gradient-boosted tree stacker (LightGBM, one thread) on the features of the
    regressions without interactions plus the protein's log length, mean ``nox`` score, fraction with ``nox``
    >= 0.5 and each residue's relative position: a comparison (never chosen, not a shippable track)."""
    import lightgbm as lgb

    def with_protein(xi, s):
        n = len(xi)
        return np.hstack([xi, np.tile([np.log(n), s["nox"].mean(), (s["nox"] >= 0.5).mean()], (n, 1)),
                          (np.arange(n) / n)[:, None]])

    x = [with_protein(xi, s) for xi, s in zip(x, scores)]
    oof: list = [None] * len(x)
    for i in range(k):
        train = [j for j in range(len(x)) if fold[j] != i]
        xs, ys = np.concatenate([x[j] for j in train]), np.concatenate([labels[j] for j in train])
        keep = ys >= 0
        model = lgb.LGBMClassifier(n_jobs=1, verbose=-1, random_state=0, **GBDT).fit(xs[keep], ys[keep].astype(int))
        for j in np.flatnonzero(fold == i):
            oof[j] = model.predict_proba(x[j])[:, 1]
    return oof


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="a fold_recipe.py output folder")
    ap.add_argument("--candidate", required=True, help="whose fold models give the disorder scores")
    ap.add_argument("--binding", required=True)
    ap.add_argument("--binding-idr", required=True)
    ap.add_argument("--linker", required=True)
    ap.add_argument("--l2", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--ship", default=None, help="write a stack model here: the candidate's -all model as its "
                    "base, regressions of the chosen variant fitted on every protein's out-of-fold features")
    ap.add_argument("--base", default=None, help="the base --ship uses (default RUNS/CANDIDATE-all): the same "
                    "weights, e.g. with the thresholds and card select_models.py --ship gave it")
    ap.add_argument("--extra", default=None, help="a model folder whose further tracks (e.g. plddt) --ship keeps")
    ap.add_argument("--protein", action="store_true", help="also variants with the protein and region "
                    "features (idrkit.models.stack.region_features)")
    ap.add_argument("--plddt", default="", metavar="SOURCE", help="also variants with pLDDT features "
                    "(idrkit.models.stack.plddt_features) of SOURCE: metapredict-plddt (a comparison) or a model "
                    "folder with a plddt track; to ship one, --extra must be that model")
    ap.add_argument("--gbdt", action="store_true", help="also score a LightGBM stacker (a comparison, never chosen)")
    ap.add_argument("--nested", default="", metavar="PAIRS", help="a fold_recipe.py --pairs output of the same "
                    "candidate and folds: each held-out fold's regressions learn from scores of models that never "
                    "saw that fold's labels either (without it, the other folds' scores come from models that did)")
    ap.add_argument("--partner", default="", metavar="FOLDER", help="a model with a fine-tuned binding head "
                    "(binding_finetune.py --ship-head) whose binding scores the shipped binding track averages with "
                    "its regression's; give its held-out scores with --partner-oof")
    ap.add_argument("--partner-oof", default="", metavar="PICKLE", help="binding_finetune.py --dump of the same "
                    "candidate and folds: the held-out scores after its last epoch are averaged with the chosen "
                    "regression's out-of-fold scores")
    args = ap.parse_args(argv)
    if bool(args.partner) != bool(args.partner_oof) and (args.ship or args.partner):
        raise InputError("--partner ships with its held-out scores: give --partner-oof too")
    if args.nested and args.gbdt:
        raise InputError("--gbdt is not nested: leave out one of --nested and --gbdt")
    partner, dump = read_partner(args)  # checked before any work
    if args.ship:
        check_model_folder_output(args.ship)  # a folder that is not a model is refused before any work too
    runs = Path(args.runs)
    folds = read_folds(runs)
    fold_of = {f["id"].split("|")[0]: f["fold"] for f in folds if f["track"] == "nox"}
    k = 1 + max(f["fold"] for f in folds)
    models = [load_model(runs / f"{args.candidate}-fold{i}") for i in range(k)]
    groups = [""] + (["protein"] if args.protein else []) + (["plddt"] if args.plddt else [])
    variants = [(inter, l2, g) for g in groups for inter in (False, True) for l2 in args.l2]
    files = {"binding": args.binding, "binding within IDRs": args.binding_idr, "linker": args.linker}
    data, oof, plain = {}, {}, {}
    for name, path in files.items():
        recs = read_records(path, require_labels=True)
        missing = [r.id for r in recs if r.id.split("|")[0] not in fold_of]
        if missing:
            raise InputError(f"{path}: '{missing[0]}' is in no fold of {runs} (not a NOX training protein)")
        fold = np.array([fold_of[r.id.split("|")[0]] for r in recs])
        scores: list = [None] * len(recs)
        for i in range(k):
            idx = np.flatnonzero(fold == i)
            for j, sc in zip(idx, disorder_scores(models[i], [recs[j].sequence for j in idx])):
                scores[j] = sc
        seq_feats = [featurize_many([r.sequence], SEQUENCE_SPEC) for r in recs]
        plddt = plddt_of(args.plddt, [r.sequence for r in recs]) if args.plddt else [None] * len(recs)
        x = {(inter, g): [stack_features(s, f, inter, g == "protein", pl if g == "plddt" else None)
                          for s, f, pl in zip(scores, seq_feats, plddt)]
             for inter in (False, True) for g in groups}
        inner = {key: None for key in x}
        if args.nested:
            nested = pair_scores(Path(args.nested), args.candidate, fold, k, [r.sequence for r in recs])
            inner = {(inter, g): {i: {j: stack_features(s, seq_feats[j], inter, g == "protein",
                                                        plddt[j] if g == "plddt" else None)
                                      for j, s in nested[i].items()} for i in range(k)}
                     for inter, g in x}
        labels = [r.labels for r in recs]
        data[name] = {"recs": recs, "fold": fold, "scores": scores, "x": x, "labels": labels}
        oof[name] = {v: out_of_fold(x[v[0], v[2]], labels, fold, k, v[1], inner[v[0], v[2]]) for v in variants}
        if args.nested:  # beside it, the same regressions not nested (how much that flatters them)
            plain[name] = {v: out_of_fold(x[v[0], v[2]], labels, fold, k, v[1]) for v in variants}
        del inner
        if args.gbdt:
            oof[name]["gbdt"] = out_of_fold_gbdt(x[False, ""], scores, labels, fold, k)

    def auc(labels, scores):
        return pooled_metrics(labels, scores)["auc"]

    chosen = max(variants, key=lambda v: np.mean([auc(data[n]["labels"], oof[n][v]) for n in files]))
    label = {v: f"LR l2={v[1]:g}" + (" +int" if v[0] else "") + (f" +{v[2]}" if v[2] else "") for v in variants}
    shown = variants + (["gbdt"] if args.gbdt else [])
    label["gbdt"] = "LightGBM"
    how = ("nested: each fold's regression learns from scores of models that left out that fold too"
           if args.nested else "the other folds' scores come from models that saw the held-out fold's disorder labels")
    print(f"disorder scores: {args.candidate}, {k} folds; logistic regression per fold on the other folds ({how}); "
          f"chosen (highest mean AUC of the three files): {label[chosen]}")
    table(data, oof, shown, label, auc)
    if dump is not None:  # the chosen regression averaged with the fine-tuned head, on the same held-out folds
        partner_oof(args, dump, data, oof, chosen, auc)
    if args.nested:
        print("the same regressions not nested (the other folds' scores from models that saw the held-out fold):")
        table(data, plain, variants, label, auc)
    if args.ship:
        ship(args, runs, data, oof, chosen, k, partner)
    return 0


def read_partner(args):
    """The ``--partner`` model and the ``--partner-oof`` held-out scores (each None when not given), refused
    when the partner has no binding track or was fine-tuned for other epochs than its held-out scores."""
    import pickle

    partner = load_model(args.partner) if args.partner else None
    if partner is not None and "binding" not in partner.tracks:
        raise InputError(f"--partner {args.partner}: no binding track (make it with binding_finetune.py --ship-head)")
    dump = pickle.loads(Path(args.partner_oof).read_bytes()) if args.partner_oof else None
    if partner is not None:
        epochs, last = partner.meta.get("card", {}).get("binding_head", {}).get("epochs"), max(dump["scores"])
        if epochs != last:
            raise InputError(f"--partner {args.partner}: fine-tuned {epochs} epochs, its held-out "
                             f"scores {last}: make both with the same binding_finetune.py --epochs")
    return partner, dump


def partner_oof(args, dump: dict, data: dict, oof: dict, chosen, auc) -> None:
    """The binding track as a stack with a partner ships it: the chosen regression's out-of-fold scores
    averaged with the partner's held-out scores (``oof["binding"]["partner"]``), printed beside both."""
    d = data["binding"]
    if dump.get("ids") != [r.id for r in d["recs"]] or not np.array_equal(dump.get("fold"), d["fold"]):
        raise InputError(f"{args.partner_oof}: not the held-out scores of {args.binding} on these folds")
    last = max(dump["scores"])
    head = dump["scores"][last]
    oof["binding"]["partner"] = [(a + b) / 2 for a, b in zip(oof["binding"][chosen], head)]
    order = {r.id: i for i, r in enumerate(d["recs"])}
    within = data["binding within IDRs"]
    pos = [order[r.id] for r in within["recs"]]
    print(f"binding (AUC on all residues / the binding track within IDRs), {len(d['recs'])} proteins:")
    for what, sc in ((f"fine-tuned head after {last} epochs", head), ("chosen regression", oof["binding"][chosen]),
                     ("their mean (the shipped binding track)", oof["binding"]["partner"])):
        print(f"  {what:<40} {auc(d['labels'], sc):.4f} {auc(within['labels'], [sc[j] for j in pos]):.4f}")


def table(data: dict, oof: dict, shown: list, label: dict, auc) -> None:
    """AUC of every variant per label file, and of the binding track (fitted on all binding labels) scored on
    the within-IDR labels, beside the ``nox`` score."""
    print(f"{'labels':<40} {'proteins':>8} {'nox score':>10} " + " ".join(f"{label[v]:>20}" for v in shown))
    for name, d in data.items():
        cells = [f"{auc(d['labels'], [s['nox'] for s in d['scores']]):>10.4f}"]
        cells += [f"{auc(d['labels'], oof[name][v]):>20.4f}" for v in shown]
        print(f"{name:<40} {len(d['recs']):>8} " + " ".join(cells))
    order = {r.id: i for i, r in enumerate(data["binding"]["recs"])}
    within = data["binding within IDRs"]
    pos = [order[r.id] for r in within["recs"]]
    cells = [f"{auc(within['labels'], [s['nox'] for s in within['scores']]):>10.4f}"]
    cells += [f"{auc(within['labels'], [oof['binding'][v][j] for j in pos]):>20.4f}" for v in shown]
    print(f"{'binding track, scored within IDRs':<40} {len(pos):>8} " + " ".join(cells))


def ship(args, runs: Path, data: dict, oof: dict, chosen, k: int, partner=None) -> None:
    """A stack model on the candidate's -all model: regressions fitted on all out-of-fold features, thresholds
    from the out-of-fold scores (``calls_threshold``), the base's and the extra model's own thresholds kept."""
    from idrkit import __version__

    out = check_model_folder_output(args.ship)
    base_dir = Path(args.base) if args.base else runs / f"{args.candidate}-all"
    base = load_model(base_dir)
    trained = load_model(runs / f"{args.candidate}-all")
    if any(not np.array_equal(v, base.arrays.get(key)) for key, v in trained.arrays.items() if key.startswith("w.")):
        raise InputError(f"{base_dir}: not the weights of {args.candidate}-all, whose scores the regressions learnt")
    extra = load_model(args.extra) if args.extra else None
    if chosen[2] == "plddt" and (not args.extra or Path(args.plddt).resolve() != Path(args.extra).resolve()):
        raise InputError(f"the chosen regressions learnt the pLDDT of {args.plddt}: ship them with --extra {args.plddt}")
    stack = Stack(base=str(base_dir), extra=args.extra or "", partner=args.partner, l2=chosen[1],
                  interactions=chosen[0], protein=chosen[2] == "protein",
                  plddt=chosen[2] == "plddt").set_parts(base, extra, partner)
    thresholds = dict(base.meta.get("thresholds", {}))
    if extra is not None:
        thresholds.update({t: v for t, v in extra.meta.get("thresholds", {}).items() if t not in base.tracks})
    folds_fig = {}
    for track, name in (("binding", "binding"), ("linker", "linker")):
        d = data[name]
        stack.fit_features(track, d["x"][chosen[0], chosen[2]], d["labels"])
        scored = oof[name]["partner"] if partner is not None and track == "binding" else oof[name][chosen]
        thresholds[track], folds_fig[track] = threshold_and_figures(d["labels"], scored, track)
    files = [{"path": str(p), "track": t, "sha256": file_sha256(p), "proteins": len(data[n]["recs"]),
              "kept_after_dedup": len(data[n]["recs"])}
             for t, n, p in (("binding", "binding", args.binding), ("linker", "linker", args.linker))]
    rule = (f"binding and linker: {CALLS_RULE}, of the out-of-fold scores ({k} MMseqs2 folds"
            f"{', nested' if args.nested else ''}); "
            "the other tracks: their model's own")
    stack.meta = {"thresholds": thresholds, "threshold_rule": rule,
                  "card": {"family": "stack", "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                           "training_files": files, "thresholds": thresholds}}
    validation = {}
    if (base_dir / "card.json").is_file():
        validation = json.loads((base_dir / "card.json").read_text()).get("validation", {})
    with atomic_folder(out) as tmp:  # a failure leaves any earlier model there as it was
        stack.save(tmp)
        for part, sub in ((base_dir, "base"), (Path(args.extra) if args.extra else None, "extra")):
            for card in ("card.json", "card.md"):  # each part keeps its own card
                if part is not None and (part / card).is_file():
                    shutil.copy(part / card, tmp / sub / card)
        write_card(tmp, {"family": "stack", "idrkit_version": __version__, "trained_at": stack.meta["card"]["trained_at"],
                         "training_files": files, "params": {
                             "l2": chosen[1], "interactions": chosen[0], "features": chosen[2] or "standard",
                             "extra": args.extra or "",
                             "partner": (f"{args.partner} (benchmarks/binding_finetune.py; the binding track is "
                                         "the mean of its binding head and the regression)" if args.partner else ""),
                             "base": f"{args.candidate}-all (benchmarks/fold_recipe.py)"},
                         "chosen_as": "the regression variant with the highest mean out-of-fold AUC over binding, "
                                      "binding within IDRs and linker (benchmarks/function_stack.py"
                                      f"{', nested: ' + args.nested if args.nested else ''})",
                         "thresholds": thresholds, "threshold_rule": rule, "threshold_folds": folds_fig,
                         "validation": validation})


if __name__ == "__main__":
    sys.exit(run_main(main, "function_stack.py"))
