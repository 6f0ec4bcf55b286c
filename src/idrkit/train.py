"""Training: reading labelled files by track, de-duplication, homology-aware splits, model cards."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ._version import __version__
from .cache import sequence_hash64
from .errors import InputError
from .metrics import confusion, pool, pooled_metrics
from .io.readers import iter_records, read_records
from .models import Estimator, get_family
from .models.base import resolve_threshold
from .records import TRACKS
from .regions import CallOptions, track_calls
from .records import Record

_DISPROT = re.compile(r"(DP\d{5})")


def parse_train_spec(spec: str) -> tuple[str, str]:
    """``TRACK:FILE`` (``pdb``, ``nox``, ``binding``, ``linker``) or plain ``FILE`` (= pdb) -> (track, path)."""
    track, sep, path = spec.partition(":")
    if sep and track in TRACKS:
        return track, path
    return "pdb", spec


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dedup_key(record_id: str) -> str:
    """The DisProt accession (``DPxxxxx``) inside an id if there is one, else the id itself."""
    m = _DISPROT.search(record_id)
    return m.group(1) if m else record_id


def load_training(specs: Sequence[str]) -> tuple[list[Record], list[dict]]:
    """Labelled records of several files, each tagged with its track; the first file wins on duplicates.

    Returns the records and a description of every file (path, track, hash, counts) for the model card.
    """
    records: list[Record] = []
    files = []
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        track, path = parse_train_spec(spec)
        recs = read_records(path, require_labels=True)
        kept = 0
        for r in recs:
            key = (track, dedup_key(r.id))
            if key in seen:
                continue
            seen.add(key)
            r.track = track
            records.append(r)
            kept += 1
        files.append({"path": str(path), "track": track, "sha256": file_sha256(path),
                      "proteins": len(recs), "kept_after_dedup": kept})
    return records, files


def split_by_cluster(cluster_ids: Sequence[int], k: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) of each item such that no cluster is in two folds (greedy by size)."""
    cluster_ids = np.asarray(cluster_ids)
    uniq, counts = np.unique(cluster_ids, return_counts=True)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(uniq.size), -counts))  # largest clusters first, ties at random
    load = np.zeros(k)
    fold_of = {}
    for i in order:
        f = int(np.argmin(load))
        fold_of[uniq[i]] = f
        load[f] += counts[i]
    return np.array([fold_of[c] for c in cluster_ids])


def homology_folds(records: Sequence[Record], k: int = 5, seed: int = 0, min_seq_id: float = 0.3,
                   use_mmseqs: bool = True) -> np.ndarray:
    """Fold of each record from MMseqs2 clusters (30% identity) so that no cluster crosses folds."""
    if use_mmseqs:
        from .mmseqs import cluster

        clusters = cluster([r.sequence for r in records], min_seq_id=min_seq_id)
    else:
        clusters = list(range(len(records)))
    return split_by_cluster(clusters, k, seed)


def read_folds(folder: str | Path) -> list[dict]:
    """The fold of every labelled protein of a ``benchmarks/fold_recipe.py`` run (``folds.json``: track, id
    and fold of each)."""
    path = Path(folder) / "folds.json"
    if not path.is_file():
        raise InputError(f"{folder}: no folds.json (not a fold_recipe.py output)")
    return json.loads(path.read_text())


def shared_sequences(model: Estimator, sequences: Sequence[str]) -> list[int]:
    """Indices of the sequences that were in the model's training data (by stored sequence hashes)."""
    hashes = model.arrays.get("train_sequence_hash")
    if hashes is None:
        return []
    query = np.array([sequence_hash64(s) for s in sequences], dtype=np.uint64)
    return np.flatnonzero(np.isin(query, hashes)).tolist()


def split_holdout(records: Sequence[Record], holdout: float, seed: int = 0,
                  homology_split: bool = True) -> tuple[list[Record], list[Record]]:
    """(train, held-out): fold 0 of ``round(1 / holdout)`` homology folds is held out; none if too few."""
    if holdout <= 0 or len(records) < 10:
        return list(records), []
    folds = homology_folds(records, k=max(2, int(round(1 / holdout))), seed=seed, use_mmseqs=homology_split)
    return ([r for r, f in zip(records, folds) if f != 0], [r for r, f in zip(records, folds) if f == 0])


def choose_thresholds(model: Estimator, records: Sequence[Record]) -> dict[str, float]:
    """Per track, the calls threshold (:func:`calls_threshold`) on held-out records."""
    out = {}
    for track in model.tracks:
        recs = [r for r in records if r.track == track and r.labels is not None]
        if recs:
            scores = model.predict_proba([r.sequence for r in recs], track=track)
            out[track] = calls_threshold([r.labels for r in recs], scores, track)
    return out


def out_of_fold_thresholds(family: str, params: dict | None, labelled: Sequence[Record], extra: Sequence[Record],
                           folds: int, seed: int = 0, homology_split: bool = True) -> tuple[dict, dict]:
    """Thresholds from pooled out-of-fold predictions: ``folds`` homology folds of the labelled proteins, a
    model per fold trained on the others (plus ``extra``), every protein predicted once by a model that did
    not see it; per track, the calls threshold (:func:`calls_threshold`). Returns the thresholds and, per track, the pooled
    figures at them."""
    fold_of = homology_folds(labelled, k=folds, seed=seed, use_mmseqs=homology_split)
    pooled: dict[str, tuple[list, list]] = {}
    for k in range(folds):
        model, _, _ = fit_with_holdout(family, params, [r for r, f in zip(labelled, fold_of) if f != k], extra,
                                       seed=seed, homology_split=homology_split)
        held = [r for r, f in zip(labelled, fold_of) if f == k]
        for track in model.tracks:
            recs = [r for r in held if r.track == track]
            if recs:
                labels, scores = pooled.setdefault(track, ([], []))
                labels += [r.labels for r in recs]
                scores += model.predict_proba([r.sequence for r in recs], track=track)
    thresholds, figures = {}, {}
    for track, (labels, scores) in pooled.items():
        thresholds[track], figures[track] = threshold_and_figures(labels, scores, track)
    return thresholds, figures


def threshold_and_figures(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray], track: str = "pdb"
                          ) -> tuple[float, dict]:
    """The calls threshold of pooled scores (:func:`calls_threshold`) and the figures of the calls made at it
    (AUC, AP, F-max, F1, MCC, proteins)."""
    threshold = calls_threshold(labels, scores, track)
    calls = [track_calls(s, CallOptions(track), threshold) for s in scores]
    m = pooled_metrics(labels, scores, calls=calls)
    return threshold, {k: m[k] for k in ("auc", "ap", "fmax", "f1", "mcc", "proteins")}


CALLS_RULE = ("the calls threshold (region smoothing included, as idrkit predict calls): among thresholds whose "
              "pooled F1 is within 0.005 of the best, the one with the best MCC")


def calls_threshold(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray], track: str = "pdb",
                    grid: np.ndarray | None = None, tolerance: float = 0.005) -> float:
    """The threshold for a track's 0/1 calls, region smoothing included (as ``idrkit predict`` makes them):
    among the thresholds whose pooled F1 is within ``tolerance`` of the best F1 (F-max), the one with the
    best MCC. F1 is flat near its maximum; MCC, which also rewards correct order calls, picks the point
    of that plateau. ``grid`` defaults to 0.05 to 0.95 in steps of 0.01."""
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2) if grid is None else grid
    pool(labels, scores)  # checks that labels and scores match, protein by protein
    y = np.concatenate([np.asarray(lab) for lab in labels])
    known = y >= 0
    disordered = y[known] == 1
    rows = []
    for thr in grid:  # only the calls change with the threshold: F1 and MCC, not the curve metrics
        calls = np.concatenate([track_calls(s, CallOptions(track), float(thr)) for s in scores]).astype(bool)
        m = confusion(disordered, calls[known])
        rows.append((float(thr), m["f1"], m["mcc"]))
    best_f1 = max(f1 for _, f1, _ in rows)
    return max((r for r in rows if r[1] >= best_f1 - tolerance), key=lambda r: (r[2], r[1]))[0]


def evaluate_model(model: Estimator, records: Sequence[Record], track: str = "pdb",
                   threshold: float | None = None) -> dict:
    """Pooled metrics of a model on labelled records; F1 and MCC are those of the calls ``idrkit predict``
    makes (the stored threshold unless one is given, region smoothing included)."""
    scores = model.predict_proba([r.sequence for r in records], track=track)
    thr = resolve_threshold(model, track, threshold)
    # the calls idrkit predict makes (smoothed regions), from the same scores: one pass of the model
    calls = [track_calls(s, CallOptions(track, threshold), thr) for s in scores]
    return pooled_metrics([r.labels for r in records], scores, calls=calls, threshold=thr)


def write_card(folder: Path, card: dict) -> None:
    """The model card as ``card.json`` and a human-readable ``card.md``."""
    (folder / "card.json").write_text(json.dumps(card, indent=2, default=str))
    took = f" in {card['training_seconds']:.0f} s" if card.get("training_seconds") else ""
    lines = [f"# idrkit model: {card['family']}", "", f"Trained {card['trained_at']} with idrkit {card['idrkit_version']}"
             f"{took}.", "", "## Training data", "",
             "| file | track | proteins kept | sha256 |", "|---|---|---|---|"]
    for f in card["training_files"]:
        lines.append(f"| {f['path']} | {f['track']} | {f['kept_after_dedup']} | `{f['sha256'][:16]}…` |")
    if card.get("teacher"):
        lines += ["", f"Teacher: {card['teacher']}"]
    start = card.get("started_from")
    while start:  # the chain of warm starts, newest first
        lines += ["", f"Started from `{start['path']}` (weights sha256 `{start['weights_sha256'][:16]}…`, trained "
                      f"{start['trained_at']}, {start['epochs']} epochs on {', '.join(start['training_files'])})."]
        start = start.get("started_from")
    if card.get("chosen_as"):
        lines += ["", f"Chosen as: {card['chosen_as']}."]
    lines += ["", "## Parameters", "", "```json", json.dumps(card["params"], indent=2), "```", ""]
    if card.get("thresholds"):
        rule = card.get("threshold_rule") or (f"F-max on the held-out {card.get('holdout_fraction', 0):.0%} of the "
                                              "training proteins")
        lines += [f"Thresholds ({rule}): {card['thresholds']}", ""]
    if card.get("threshold_folds"):
        lines += ["## Out-of-fold figures (the calls at these thresholds)", "",
                  "| track | proteins | AUC | AP | F-max | F1 | MCC |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {t} | {m['proteins']} | {m['auc']:.4f} | {m['ap']:.4f} | {m['fmax']:.4f} | {m['f1']:.4f} | "
                  f"{m['mcc']:.4f} |" for t, m in card["threshold_folds"].items()]
        lines.append("")
    for name, figs in card.get("validation", {}).items():
        lines += [f"## Validation: {name}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in figs.items()]
        lines.append("")
    lines += ["Data: DisProt (CC BY 4.0, Aspromonte et al., NAR 2024); CAID references (Conte et al., "
              "Proteins 2023); UniProt (CC BY 4.0)."]
    (folder / "card.md").write_text("\n".join(lines) + "\n")


def fit_with_holdout(family: str, params: dict | None, labelled: Sequence[Record], extra: Sequence[Record] = (),
                     holdout: float = 0.1, seed: int = 0, homology_split: bool = True, threshold_folds: int = 0
                     ) -> tuple[Estimator, list[Record], list[Record]]:
    """Fit a family on labelled records (plus ``extra``, e.g. teacher-scored ones) with a held-out part.

    The held-out part (by homology cluster) drives early stopping and, unless ``threshold_folds`` > 1, sets
    the thresholds; with ``threshold_folds`` K the thresholds come from pooled out-of-fold predictions of K
    more models (:func:`out_of_fold_thresholds`). Returns the model and the (train, held-out) split.
    """
    model = get_family(family)(**(params or {}))
    train, tune = split_holdout(labelled, holdout, seed, homology_split)
    model.fit(list(extra) + train, valid=tune or None)
    if threshold_folds > 1:
        thresholds, figures = out_of_fold_thresholds(family, params, labelled, extra, threshold_folds, seed,
                                                     homology_split)
        model.meta["thresholds"] = thresholds
        model.meta["threshold_rule"] = (f"per track, {CALLS_RULE}, of pooled out-of-fold predictions "
                                        f"of {threshold_folds} homology folds of the labelled proteins")
        model.meta["threshold_folds"] = figures
    elif tune:
        model.meta["thresholds"] = choose_thresholds(model, tune)
    return model, train, tune


def train_model(family: str, train_specs: Sequence[str], out: str | Path, valid: str | Path | None = None,
                params: dict | None = None, holdout: float = 0.1, seed: int = 0,
                homology_split: bool = True, extra_card: dict | None = None,
                threshold_folds: int = 0) -> tuple[Estimator, dict]:
    """Train a family on labelled files, pick thresholds (a held-out part, or out-of-fold predictions of
    ``threshold_folds`` homology folds), save model and card."""
    t0 = time.time()
    records, files = load_training(train_specs)
    model, train, tune = fit_with_holdout(family, params, records, holdout=holdout, seed=seed,
                                          homology_split=homology_split, threshold_folds=threshold_folds)
    return model, _finish(model, family, files, records, train, tune, holdout, homology_split, valid, out, t0,
                          extra_card)


def first_proteins(files: Sequence[str | Path], max_residues: int, track: str) -> tuple[list[str], list[dict]]:
    """The first proteins of each file, up to an equal share of ``max_residues`` (distinct sequences), and
    each file's description for a model card (``track`` says what the student learns from it)."""
    seqs, described = [], []
    for path in files:
        per_file, n = 0, 0
        for rec in iter_records(path, check_duplicates=False):
            if per_file + len(rec) > max_residues // len(files):
                break
            seqs.append(rec.sequence)
            per_file += len(rec)
            n += 1
        described.append({"path": str(path), "track": track, "sha256": file_sha256(path), "proteins": n,
                          "kept_after_dedup": n})
    return list(dict.fromkeys(seqs)), described


def teacher_records(teacher: str, files: Sequence[str | Path], max_sequences: int = 0, seed: int = 0,
                    progress: bool = False) -> tuple[list[Record], list[dict]]:
    """Unlabelled sequences with a teacher's scores as soft labels (track ``teacher``), cached on disk."""
    from .teachers import teacher_scores

    records, described, source = [], [], []
    for k, path in enumerate(files):
        recs = list(iter_records(path, check_duplicates=False))
        described.append({"path": str(path), "track": "", "sha256": file_sha256(path),
                          "proteins": len(recs), "kept_after_dedup": len(recs)})
        records += recs
        source += [k] * len(recs)
    if max_sequences and len(records) > max_sequences:
        pick = sorted(np.random.default_rng(seed).choice(len(records), max_sequences, replace=False))
        records = [records[i] for i in pick]
        used = np.bincount([source[i] for i in pick], minlength=len(files))
        for d, n in zip(described, used.tolist()):
            d["kept_after_dedup"] = n  # proteins of this file in the random subset
    scores = teacher_scores(teacher, [r.sequence for r in records])
    # a pLDDT teacher (0-100) is learnt as the plddt track, on [0, 1]; a disorder teacher as the teacher head
    track, scale = ("plddt", 100.0) if teacher == "metapredict-plddt" else ("teacher", 1.0)
    for r, sc in zip(records, scores):
        r.labels = np.asarray(sc, dtype=np.float32) / scale
        r.track = track
    for d in described:
        d["track"] = track
    return records, described


def distil_model(teacher: str, unlabelled: Sequence[str], train_specs: Sequence[str], family: str,
                 out: str | Path, valid: str | Path | None = None, params: dict | None = None,
                 holdout: float = 0.1, seed: int = 0, homology_split: bool = True,
                 max_unlabelled: int = 0, threshold_folds: int = 0) -> tuple[Estimator, dict]:
    """Train a student on a teacher's scores for unlabelled sequences, with or without labelled files."""
    t0 = time.time()
    soft, soft_files = teacher_records(teacher, unlabelled, max_unlabelled, seed)
    labelled, files = load_training(train_specs) if train_specs else ([], [])
    model, train, tune = fit_with_holdout(family, params, labelled, soft, holdout, seed, homology_split,
                                          threshold_folds)
    return model, _finish(model, family, files + soft_files, labelled + soft, train, tune, holdout,
                          homology_split, valid, out, t0, {"teacher": teacher})


def started_from(folder: str | Path) -> dict:
    """What a warm-started model began from: the folder, its weights' hash and its own card's summary."""
    folder = Path(folder)
    doc = json.loads((folder / "model.json").read_text())
    card = doc.get("meta", {}).get("card", {})
    return {"path": str(folder), "weights_sha256": file_sha256(folder / "weights.npz"),
            "trained_at": card.get("trained_at"), "epochs": doc.get("params", {}).get("epochs"),
            "training_files": [f"{f['track']}:{f['path']}" for f in card.get("training_files", [])],
            "started_from": doc.get("meta", {}).get("started_from")}


def _finish(model, family, files, records, train, tune, holdout, homology_split, valid, out, t0,
            extra_card) -> dict:
    """Write the model and its card (data hashes, parameters, thresholds, validation figures)."""
    card = {
        "family": family,
        "idrkit_version": __version__,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "training_files": files,
        "params": asdict(model.params),
        "holdout_fraction": holdout if tune else 0.0,
        "homology_split": bool(homology_split and tune),
        "thresholds": model.meta.get("thresholds", {}),
        "threshold_rule": model.meta.get("threshold_rule") or (
            f"per track, {CALLS_RULE}, on the held-out {holdout:.0%} of the training proteins"
            if tune else "none chosen (0.5)"),
        "threshold_folds": model.meta.get("threshold_folds", {}),
        "training_sequences": len(train),
        "validation": {},
    }
    card.update(extra_card or {})
    init_from = getattr(model.params, "init_from", "")
    if init_from:
        card["started_from"] = started_from(init_from)
    model.arrays["train_sequence_hash"] = np.array(sorted({sequence_hash64(r.sequence) for r in records}),
                                                   dtype=np.uint64)
    if valid is not None:
        vtrack, valid = parse_train_spec(str(valid))
        vrecs = read_records(valid, require_labels=True)
        overlap = shared_sequences(model, [r.sequence for r in vrecs])
        if overlap:
            raise InputError(f"{valid}: {len(overlap)} validation sequences are also in the training data")
        if vtrack in model.tracks:
            card["validation"][f"{Path(valid).name} ({vtrack} track)"] = evaluate_model(model, vrecs, vtrack)
    card["training_seconds"] = time.time() - t0
    out = Path(out)
    model.meta["card"] = {k: card[k] for k in ("family", "trained_at", "training_files", "thresholds")}
    if "started_from" in card:
        model.meta["started_from"] = card["started_from"]
    model.save(out)
    write_card(out, card)
    return card
