"""Choose on folds, report on validation: candidates, shipped models and metapredict in one table.

The protocol (docs/benchmarks.md, "Choosing on folds"):

1. The labelled training proteins of both tracks (``pdb``, ``nox``) are clustered together by MMseqs2 at 30%
   identity and the clusters split into K folds; ``benchmarks/fold_recipe.py`` trains, for every candidate
   recipe, one model per fold on the other folds (``NAME-foldK``) and one on all of them (``NAME-all``).
2. Every labelled protein is predicted by the model of its fold; these out-of-fold scores are pooled per track.
   metapredict v3 and v2 are scored on the same proteins. Per candidate and track: AUC, AP, F-max and the F1
   and MCC of the calls at the threshold chosen on the same pooled scores (``idrkit.train.calls_threshold``:
   the calls ``idrkit predict`` makes, region smoothing included; the best MCC among thresholds within 0.005
   of F-max). metapredict's calls are its scores >= 0.5.
3. The candidate with the highest mean of ``pdb`` AUC and AP on the folds is chosen (``--rule``); its
   thresholds are its out-of-fold thresholds.
4. Only then is the validation file scored: every candidate's ``-all`` model at its out-of-fold thresholds,
   the shipped models at their stored thresholds, metapredict v3 and v2 (``--baselines``). A paired bootstrap
   over proteins gives the chosen candidate minus v3 (AUC, AP) on the folds and on the validation file.

``--ship DIR`` writes the chosen candidate's ``-all`` model there with its thresholds and a model card that
says which data, folds and rule chose it.

    D=../shared/data
    python benchmarks/select_models.py --runs runs/recipe --valid $D/caid2_disorder_pdb.fasta \\
        --train pdb:$D/train_disorder_pdb.fasta nox:$D/train_disprot_nox.fasta \\
        --models default fast --bootstrap 1000 --markdown docs/runs/select.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from idrkit.errors import InputError, run_main
from idrkit.io import atomic_folder, atomic_path, check_model_folder_output, read_records, write_text_atomic
from idrkit.metrics import paired_bootstrap, pooled_metrics
from idrkit.models import load_model
from idrkit.models.base import resolve_threshold
from idrkit.predict import get_model
from idrkit.regions import CallOptions, track_calls
from idrkit.teachers import teacher_scores
from idrkit.train import CALLS_RULE, load_training, read_folds, shared_sequences, threshold_and_figures, write_card

TRACKS = ("pdb", "nox")
METRICS = ("auc", "ap", "fmax", "f1", "mcc")


def candidates(run_dirs) -> tuple[dict[str, dict], list[dict]]:
    """``name -> {"folds": {k: folder}, "all": folder}`` of every complete candidate, and the folds."""
    found: dict[str, dict] = {}
    folds = None
    for run in run_dirs:
        run = Path(run)
        these = read_folds(run)
        if folds is not None and these != folds:
            raise InputError(f"{run}: its folds differ from those of the other runs")
        folds = these
        for d in sorted(run.iterdir()):
            m = re.fullmatch(r"(.+)-(fold(\d+)|all)", d.name)
            if d.is_dir() and m:
                entry = found.setdefault(m.group(1), {"folds": {}, "all": None})
                if m.group(3) is not None:
                    entry["folds"][int(m.group(3))] = d
                else:
                    entry["all"] = d
    k = 1 + max(f["fold"] for f in folds)
    complete = {n: e for n, e in found.items() if len(e["folds"]) == k and e["all"] is not None}
    return complete, folds


def baseline_name(teacher: str) -> str:
    """``metapredict-v3`` -> ``metapredict v3``; a model folder keeps its path."""
    return teacher.replace("metapredict-", "metapredict ") if teacher.startswith("metapredict-") else teacher


def mean_scores(per_member) -> list[np.ndarray]:
    """Per protein, the mean of the members' scores (``per_member``: one list of arrays per member)."""
    return [np.mean(z, axis=0) for z in zip(*per_member)]


def calls_of(scores, track: str, threshold: float, smoothed: bool):
    if smoothed:
        return [track_calls(s, CallOptions(track), threshold) for s in scores]
    return [np.asarray(s) >= threshold for s in scores]


def figures(labels, scores, calls) -> dict:
    m = pooled_metrics(labels, scores, calls=calls)
    return {k: m[k] for k in METRICS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, help="fold_recipe.py output folders")
    ap.add_argument("--train", nargs="+", required=True, help="the TRACK:FASTA files the folds were made of")
    ap.add_argument("--valid", required=True, help="validation file (pdb track), scored at the end")
    ap.add_argument("--models", nargs="*", default=["default"], help="shipped models or folders: validation rows")
    ap.add_argument("--baselines", nargs="*", default=["metapredict-v3", "metapredict-v2"],
                    help="teachers scored beside the candidates (calls: scores >= 0.5); the first is the "
                         "reference of the paired bootstrap")
    ap.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamplings of proteins")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--pack", default=None, help="the fold_recipe.py pack the runs were trained from: its file "
                    "list goes into the card of --ship (its folds must be those of the runs)")
    ap.add_argument("--ensemble", action="store_true",
                    help="add rows for the mean of every candidate (reported, never chosen: it is slower) and "
                         "for the chosen candidate averaged with the first baseline (what the labels add to it)")
    ap.add_argument("--top", type=int, default=0, metavar="K",
                    help="also consider the mean of the best k candidates (by the rule, on the folds) for k = 2..K "
                         "and choose k by the same rule on the folds: a slower, more accurate model")
    ap.add_argument("--ship-top", default=None, help="write that mean here (an ensemble of the -all models), "
                    "thresholds and card included")
    ap.add_argument("--dump", default=None, help="write every score behind the table here (pickle)")
    ap.add_argument("--ship", default=None, help="write the chosen candidate here, thresholds and card included")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.ship_top and args.top < 2:
        raise InputError("--ship-top needs --top K (K >= 2)")
    for out in (args.ship, args.ship_top):  # refused before the work, not after
        if out:
            check_model_folder_output(out)
    cands, folds = candidates(args.runs)
    if not cands:
        raise InputError("no complete candidate (every fold and -all) in " + ", ".join(args.runs))
    if args.ship_top and len(cands) < 2:
        raise InputError("--ship-top: a mean of the best k needs at least two complete candidates")
    labelled, files = load_training(args.train)
    fold_of = {(f["track"], f["id"]): f["fold"] for f in folds}
    missing = [r.id for r in labelled if (r.track, r.id) not in fold_of]
    if missing:
        raise InputError(f"{len(missing)} training proteins have no fold (e.g. '{missing[0]}'): other files?")
    fold = np.array([fold_of[(r.track, r.id)] for r in labelled])
    by_track = {t: [i for i, r in enumerate(labelled) if r.track == t] for t in TRACKS}
    labels = {t: [labelled[i].labels for i in idx] for t, idx in by_track.items()}

    # ---------------------------------------------------------------- out-of-fold scores and figures
    oof: dict[str, dict[str, list]] = {}
    for name, entry in cands.items():
        oof[name] = {}
        for t, idx in by_track.items():
            scores: list = [None] * len(idx)
            for k, folder in entry["folds"].items():
                model = load_model(folder)
                pos = [j for j, i in enumerate(idx) if fold[i] == k]
                for j, s in zip(pos, model.predict_proba([labelled[idx[j]].sequence for j in pos], track=t)):
                    scores[j] = s
            oof[name][t] = scores
    # the labels of a fold are never trained on by its model (the folds are MMseqs2 clusters); the unlabelled
    # proteins distilled from may hold the same sequences (with v3's scores, not labels): count them
    distilled_seen = set()
    for run in args.runs:
        for d in Path(run).glob("*-distilled"):
            distilled_seen |= set(shared_sequences(load_model(d), [r.sequence for r in labelled]))
    rows_folds, thresholds = {}, {}

    def out_of_fold_row(name):  # per track: the calls threshold of the pooled scores, figures at it
        rows_folds[name], thresholds[name] = {}, {}
        for t in TRACKS:
            thr, fig = threshold_and_figures(labels[t], oof[name][t], t)
            thresholds[name][t], rows_folds[name][t] = thr, fig | {"thr": thr}

    for name in cands:
        out_of_fold_row(name)
    meta = {}
    for teacher in args.baselines:
        sc = {t: teacher_scores(teacher, [labelled[i].sequence for i in idx]) for t, idx in by_track.items()}
        meta[baseline_name(teacher)] = sc
        rows_folds[baseline_name(teacher)] = {
            t: figures(labels[t], sc[t], calls_of(sc[t], t, 0.5, False)) | {"thr": 0.5} for t in TRACKS}
    def rule(name):  # the choice rule: the highest mean of pdb AUC and AP on the folds
        return rows_folds[name]["pdb"]["auc"] + rows_folds[name]["pdb"]["ap"]

    def mean_row(name, members):  # the out-of-fold row of the mean of some candidates' scores
        oof[name] = {t: mean_scores(oof[n][t] for n in members) for t in TRACKS}
        out_of_fold_row(name)

    chosen = max(cands, key=rule)
    validated_means = {}  # the means of candidates scored on the validation file: name -> members
    if args.ensemble:  # an ensemble row, reported but not chosen from (it predicts len(cands) times slower)
        mean_name = f"mean of the {len(cands)} candidates"
        mean_row(mean_name, cands)
        validated_means[mean_name] = list(cands)
    top_name = None
    if args.top >= 2 and len(cands) >= 2:  # means of the best k candidates; k chosen on the folds by the same rule
        ranked = sorted(cands, key=rule, reverse=True)
        tops = {f"mean of the best {k_top}": ranked[:k_top] for k_top in range(2, min(args.top, len(ranked)) + 1)}
        for name, members in tops.items():
            mean_row(name, members)
        top_name = max(tops, key=rule)
        top_members = tops[top_name]
        validated_means[top_name] = top_members

    # ---------------------------------------------------------------- validation, scored once
    vrecs = read_records(args.valid, require_labels=True)
    vseqs, vlab = [r.sequence for r in vrecs], [r.labels for r in vrecs]
    rows_valid, vscores = {}, {}
    for name, entry in cands.items():
        model = load_model(entry["all"])
        if shared_sequences(model, vseqs):
            raise InputError(f"{entry['all']}: shares sequences with the validation file")
        sc = model.predict_proba(vseqs, track="pdb")
        vscores[name] = sc
        thr = thresholds[name]["pdb"]
        rows_valid[name] = figures(vlab, sc, calls_of(sc, "pdb", thr, True)) | {"thr": thr}
    for name, members in validated_means.items():
        sc = vscores[name] = mean_scores(vscores[n] for n in members)
        thr = thresholds[name]["pdb"]
        rows_valid[name] = figures(vlab, sc, calls_of(sc, "pdb", thr, True)) | {"thr": thr}
    ref = baseline_name(args.baselines[0]) if args.baselines else None
    if args.ensemble and ref:  # what the labels add to the teacher: the chosen candidate averaged with it
        both = f"mean of {chosen} and {ref} (reference)"
        oof[both] = {t: [(a + b) / 2 for a, b in zip(oof[chosen][t], meta[ref][t])] for t in TRACKS}
        rows_folds[both] = {t: figures(labels[t], oof[both][t], calls_of(oof[both][t], t, 0.5, False))
                            | {"thr": 0.5} for t in TRACKS}
    for name in args.models:
        model = get_model(name)
        sc = model.predict_proba(vseqs, track="pdb")
        thr = resolve_threshold(model, "pdb")
        label = f"shipped {name}" if not Path(name).is_dir() else name
        vscores[label] = sc
        rows_valid[label] = figures(vlab, sc, [track_calls(s, CallOptions("pdb"), thr) for s in sc]) | {"thr": thr}
    for teacher in args.baselines:
        sc = teacher_scores(teacher, vseqs)
        vscores[baseline_name(teacher)] = sc
        rows_valid[baseline_name(teacher)] = figures(vlab, sc, calls_of(sc, "pdb", 0.5, False)) | {"thr": 0.5}
    if args.ensemble and ref:
        sc = [(a + b) / 2 for a, b in zip(vscores[chosen], vscores[ref])]
        vscores[both] = sc
        rows_valid[both] = figures(vlab, sc, calls_of(sc, "pdb", 0.5, False)) | {"thr": 0.5}

    if args.dump:  # every score behind the table, for further analysis
        import pickle

        with atomic_path(args.dump) as tmp, open(tmp, "wb") as fh:
            pickle.dump({"oof": oof, "metapredict_folds": meta, "labels": labels, "valid_scores": vscores,
                         "valid_labels": vlab, "thresholds": thresholds, "chosen": chosen}, fh)

    # ---------------------------------------------------------------- paired bootstrap against v3
    paired = {}
    if args.bootstrap and ref:
        for t in TRACKS:
            paired[f"{chosen} minus {ref}, folds, {t}"] = paired_bootstrap(labels[t], oof[chosen][t], meta[ref][t],
                                                                         n=args.bootstrap)
        paired[f"{chosen} minus {ref}, validation"] = paired_bootstrap(vlab, vscores[chosen], vscores[ref],
                                                                      n=args.bootstrap)
        if top_name:
            for t in TRACKS:
                paired[f"{top_name} minus {ref}, folds, {t}"] = paired_bootstrap(
                    labels[t], oof[top_name][t], meta[ref][t], n=args.bootstrap)
            paired[f"{top_name} minus {ref}, validation"] = paired_bootstrap(vlab, vscores[top_name], vscores[ref],
                                                                            n=args.bootstrap)
        for name in args.models:
            label = f"shipped {name}" if not Path(name).is_dir() else name
            paired[f"{label} minus {ref}, validation"] = paired_bootstrap(vlab, vscores[label], vscores[ref],
                                                                         n=args.bootstrap)

    # ---------------------------------------------------------------- the table
    k = len(next(iter(cands.values()))["folds"])
    head = ["predictor"] + [f"{t} {m}" for t in TRACKS for m in ("AUC", "AP", "F-max", "F1", "MCC", "thr")] + [
        "valid AUC", "valid AP", "valid F-max", "valid F1", "valid MCC", "valid thr"]
    lines = [f"Pooled out-of-fold predictions: {k} MMseqs2 folds (30% identity) of "
             + ", ".join(f"{f['track']}:{Path(f['path']).name} ({f['kept_after_dedup']})" for f in files)
             + f"; validation: {Path(args.valid).name} ({len(vrecs)} proteins), scored after the choice. "
             f"Chosen (highest mean of pdb AUC and AP on the folds): **{chosen}**. {len(distilled_seen)} of the "
             f"{len(labelled)} labelled proteins are also among the unlabelled proteins the candidates were "
             "distilled from (v3's scores only, never their labels)."
             + (f" Best mean of the best k candidates (k chosen by the same rule): **{top_name}** "
                f"({', '.join(top_members)})." if top_name else ""), "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]

    def cells(fig):
        return [f"{fig[m]:.4f}" if m in ("auc", "ap") else f"{fig[m]:.3f}" for m in METRICS] + [f"{fig['thr']:.2f}"]

    names = list(oof) + [n for n in rows_valid if n not in oof]
    for name in names:
        row = [f"**{name}**" if name in (chosen, top_name) else name]
        for t in TRACKS:
            row += cells(rows_folds[name][t]) if name in rows_folds else [""] * 6
        row += cells(rows_valid[name]) if name in rows_valid else [""] * 6
        lines.append("| " + " | ".join(row) + " |")
    if paired:
        lines += ["", f"Paired bootstrap over proteins ({args.bootstrap} resamplings): difference, 95% interval, "
                  "share of resamplings ahead.", "", "| comparison | AUC diff | AUC 95% | AUC ahead | AP diff | "
                  "AP 95% | AP ahead |", "|---|---|---|---|---|---|---|"]
        for name, p in paired.items():
            lines.append(f"| {name} | " + " | ".join(
                f"{p[m]['diff']:+.4f} | [{p[m]['low']:+.4f}, {p[m]['high']:+.4f}] | {p[m]['a_higher']:.1%}"
                for m in ("auc", "ap")) + " |")
    text = "\n".join(lines)
    print(text)
    print(f"\n({time.time() - t0:.0f} s)", file=sys.stderr)
    if args.markdown:
        write_text_atomic(args.markdown, text + "\n")
    if (args.ship or args.ship_top) and args.pack:
        with np.load(args.pack) as z:
            if z["folds"].tolist() != [f["fold"] for f in folds] or "files" not in z.files:
                raise InputError(f"{args.pack}: not the pack of these runs (other folds, or no file list)")
            files = json.loads(str(z["files"]))
    if args.ship:
        ship(cands[chosen]["all"], Path(args.ship), chosen, thresholds[chosen], rows_folds[chosen],
             rows_valid[chosen], files, k, args.valid)
    if args.ship_top:
        ship_mean([cands[n]["all"] for n in top_members], Path(args.ship_top), top_name, top_members,
                  thresholds[top_name], rows_folds[top_name], rows_valid[top_name], files, k, args.valid)
    return 0


def ship(src: Path, out: Path, name: str, thresholds: dict, folds_fig: dict, valid_fig: dict, files, k: int,
         valid: str) -> None:
    """Copy the chosen ``-all`` model with its out-of-fold thresholds and a card saying how it was chosen."""
    check_model_folder_output(out)
    model = load_model(src)
    recipe = dict(model.meta.get("card", {}))
    recipe_files = recipe.pop("training_files", None)
    trained_at = recipe.pop("trained_at", None) or time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.localtime((src / "weights.npz").stat().st_mtime))
    write_chosen(model, out, {
        "trained_at": trained_at, "training_seconds": recipe.get("seconds", 0.0),
        "training_files": recipe_files or files, "params": recipe, "teacher": recipe.get("teacher", ""),
        "chosen_as": f"candidate '{name}': the highest mean of pdb AUC and AP on the pooled out-of-fold "
                     f"predictions among the candidates of benchmarks/fold_recipe.py (benchmarks/select_models.py)"},
        f"the pooled out-of-fold predictions of {k} MMseqs2", thresholds, folds_fig, valid_fig, valid)


def ship_mean(members: list[Path], out: Path, name: str, member_names: list[str], thresholds: dict, folds_fig: dict,
              valid_fig: dict, files, k: int, valid: str) -> None:
    """Write the mean of the chosen candidates' ``-all`` models as an ``ensemble`` model, with the mean's
    out-of-fold thresholds and a card saying how it was chosen."""
    check_model_folder_output(out)
    from idrkit.models.ensemble import Ensemble

    model = Ensemble(members=[str(m) for m in members], mode="mean").fit([])
    write_chosen(model, out, {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "training_files": files,
        "params": {"members": member_names, "mode": "mean"},
        "chosen_as": f"'{name}': the mean of the best k candidates of benchmarks/fold_recipe.py by the highest "
                     "mean of pdb AUC and AP on the pooled out-of-fold predictions, k chosen by the same rule "
                     "(benchmarks/select_models.py --top)"},
        f"the pooled out-of-fold predictions (the mean of the members' fold models) of {k} MMseqs2",
        thresholds, folds_fig, valid_fig, valid)


def write_chosen(model, out: Path, about: dict, predictions: str, thresholds: dict, folds_fig: dict, valid_fig: dict,
                 valid: str) -> None:
    """Give a chosen model its out-of-fold thresholds and a card (``about`` plus the thresholds, the rule
    and the figures on the folds and the validation file), and write it to ``out`` through a temporary folder."""
    from idrkit import __version__

    model.meta["thresholds"] = dict(thresholds)
    rule = f"per track, {CALLS_RULE}, of {predictions} folds (30% identity) of the labelled training proteins"
    model.meta["threshold_rule"] = rule
    card = {"family": model.family, "idrkit_version": __version__, **about,
            "thresholds": dict(thresholds), "threshold_rule": rule,
            "threshold_folds": {t: {m: folds_fig[t][m] for m in (*METRICS, "proteins")} for t in TRACKS},
            "validation": {f"{Path(valid).name} (pdb track, scored after the choice)": {
                m: valid_fig[m] for m in METRICS}}}
    model.meta["card"] = {key: card[key] for key in ("family", "trained_at", "training_files", "thresholds")}
    with atomic_folder(out) as tmp:  # a failure leaves any earlier model there as it was
        model.save(tmp)
        write_card(tmp, card)


if __name__ == "__main__":
    sys.exit(run_main(main, "select_models.py"))
