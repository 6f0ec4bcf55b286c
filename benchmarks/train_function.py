"""A multi-head CNN with binding, linker and pLDDT tracks beside both disorder tracks, with fold figures.

(It was the first shipped ``function`` model; the shipped one is now a ``stack`` from
``benchmarks/function_stack.py --ship``, which keeps this CNN as its ``extra`` part for the ``plddt`` track.)

Every labelled protein (Disorder-PDB, Disorder-NOX, binding and linker files, de-duplicated by DisProt
accession per track) is clustered with MMseqs2 (30% identity) and the clusters are split into ``--folds``
folds. For each fold a CNN learns all tracks from the other folds (each output from its own labels only,
masked loss) plus metapredict's pLDDT on unlabelled proteomes (soft targets), and predicts the held-out
proteins. The pooled out-of-fold predictions give the figures, beside the obvious baseline, the ``nox``
disorder score of the same fold model on the same proteins (and the shipped default's ``nox`` track, which
trained on these proteins, so flatters the baseline): binding AUC, binding within IDRs (DisProt's disordered
residues only), linker AUC. They also choose every threshold (``calls_threshold`` per track). The final model
learns from all folds; its pLDDT is compared with metapredict's on a held-out proteome (Pearson r per
residue pooled, and of per-protein means). The validation file is scored at the end (``pdb`` track).

    D=../shared/data
    python benchmarks/train_function.py --out runs/function --folds 3 \\
        --train pdb:$D/train_disorder_pdb.fasta nox:$D/train_disprot_nox.fasta \\
                binding:$D/train_disprot_binding.fasta linker:$D/train_disprot_linker.fasta \\
        --binding-idr $D/train_disprot_binding_idr.fasta \\
        --plddt-train $D/unlabelled/yeast_UP000002311.fasta $D/unlabelled/ecoli_UP000000625.fasta \\
        --plddt-heldout $D/unlabelled/spombe_UP000002485.fasta --valid $D/caid2_disorder_pdb.fasta
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from idrkit.io import iter_records, read_records
from idrkit.metrics import pooled_metrics
from idrkit.models import get_family
from idrkit.predict import get_model
from idrkit.records import Record
from idrkit.regions import CallOptions, track_calls
from idrkit.teachers import teacher_scores
from idrkit.train import (evaluate_model, first_proteins, homology_folds, load_training, calls_threshold,
                          split_holdout, write_card)

PARAMS = {"channels": 32, "layers": 8, "kernel": 5, "dilations": [1, 2, 4, 8], "epochs": 5, "patience": 2,
          "lr": 2e-3, "seed": 0}
FUNCTION_TRACKS = ("binding", "linker")


def plddt_records(files, max_residues: int) -> tuple[list[Record], list[dict]]:
    """Unlabelled proteins with metapredict's pLDDT / 100 as soft labels (track ``plddt``), and the files."""
    seqs, described = first_proteins(files, max_residues, "plddt (metapredict predict_pLDDT / 100)")
    scores = teacher_scores("metapredict-plddt", seqs)
    records = [Record(f"u{i}", s, np.asarray(sc, np.float32) / 100, "plddt") for i, (s, sc) in enumerate(zip(seqs, scores))]
    return records, described


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--binding-idr", required=True)
    ap.add_argument("--plddt-train", nargs="+", required=True)
    ap.add_argument("--plddt-heldout", required=True)
    ap.add_argument("--plddt-residues", type=int, default=2_000_000)
    ap.add_argument("--valid", default=None)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="runs/function-folds", help="fold models are kept here and reused")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    labelled, files = load_training(args.train)
    soft, soft_files = plddt_records(args.plddt_train, args.plddt_residues)
    print(f"{len(labelled)} labelled records, {len(soft)} pLDDT proteins ({time.time() - t0:.0f} s)", flush=True)
    # folds over unique sequences, so that a protein's tracks are held out together
    unique = list(dict.fromkeys(r.sequence for r in labelled))
    fold_of_seq = dict(zip(unique, homology_folds([Record(str(i), s) for i, s in enumerate(unique)], args.folds)))
    binding_idr = {r.sequence: r for r in read_records(args.binding_idr, require_labels=True)}
    default = get_model(None)
    oof: dict[str, list] = {t: [] for t in ("pdb", "nox", "binding", "linker", "binding_idr", "nox_on_binding",
                                            "nox_on_linker", "nox_on_binding_idr", "default_nox_on_binding",
                                            "default_nox_on_linker", "default_nox_on_binding_idr")}
    for k in range(args.folds):
        folder = Path(args.work) / f"fold{k}"
        train = [r for r in labelled if fold_of_seq[r.sequence] != k]
        held = [r for r in labelled if fold_of_seq[r.sequence] == k]
        if (folder / "model.json").exists():
            from idrkit.models import load_model

            model = load_model(folder)
        else:
            fit, tune = split_holdout(train, 0.1, seed=k)
            model = get_family("cnn")(**PARAMS, progress=True, checkpoint_dir=str(folder) + "-ckpt")
            model.fit(fit + soft, valid=tune)
            model.save(folder)
        for track in ("pdb", "nox", "binding", "linker"):
            recs = [r for r in held if r.track == track]
            seqs = [r.sequence for r in recs]
            oof[track] += [(r.labels, s) for r, s in zip(recs, model.predict_proba(seqs, track=track))]
            if track in FUNCTION_TRACKS:
                nox = model.predict_proba(seqs, track="nox")
                oof[f"nox_on_{track}"] += [(r.labels, s) for r, s in zip(recs, nox)]
                oof[f"default_nox_on_{track}"] += [(r.labels, s) for r, s in
                                                    zip(recs, default.predict_proba(seqs, track="nox"))]
                if track == "binding":
                    idr = [(binding_idr[s].labels, b, n, d) for s, b, n, d in
                           zip(seqs, model.predict_proba(seqs, track="binding"), nox,
                               default.predict_proba(seqs, track="nox")) if s in binding_idr]
                    oof["binding_idr"] += [(lab, b) for lab, b, _, _ in idr]
                    oof["nox_on_binding_idr"] += [(lab, n) for lab, _, n, _ in idr]
                    oof["default_nox_on_binding_idr"] += [(lab, d) for lab, _, _, d in idr]
        print(f"fold {k}: {len(held)} held-out records ({time.time() - t0:.0f} s)", flush=True)
    figures = {}
    for name, pairs in oof.items():
        if pairs:
            m = pooled_metrics([p[0] for p in pairs], [p[1] for p in pairs])
            figures[name] = {"proteins": len(pairs), "auc": m["auc"], "ap": m["ap"], "fmax": m["fmax"]}
    thresholds = {t: calls_threshold([p[0] for p in oof[t]], [p[1] for p in oof[t]], t)
                  for t in ("pdb", "nox", "binding", "linker")}
    for t, thr in thresholds.items():
        calls = [track_calls(s, CallOptions(t), thr) for _, s in oof[t]]
        m = pooled_metrics([p[0] for p in oof[t]], [p[1] for p in oof[t]], calls=calls)
        figures[t].update(threshold=thr, f1=m["f1"], mcc=m["mcc"])
    print(json.dumps(figures, indent=1), flush=True)

    # the final model: every fold
    final = Path(args.work) / "all"
    if (final / "model.json").exists():
        from idrkit.models import load_model

        model = load_model(final)
    else:
        fit, tune = split_holdout(labelled, 0.1, seed=args.folds)
        model = get_family("cnn")(**PARAMS, progress=True, checkpoint_dir=str(final) + "-ckpt")
        model.fit(fit + soft, valid=tune)
        model.save(final)
    model.meta["thresholds"] = {**thresholds, "plddt": 0.7}
    held_plddt = [r.sequence for r in iter_records(args.plddt_heldout, check_duplicates=False)][:600]
    teacher = teacher_scores("metapredict-plddt", held_plddt)
    mine = model.predict_proba(held_plddt, track="plddt")
    per_residue = float(np.corrcoef(np.concatenate(teacher), np.concatenate(mine))[0, 1])
    per_protein = float(np.corrcoef([t.mean() for t in teacher], [m.mean() for m in mine])[0, 1])
    figures["plddt_heldout"] = {"proteins": len(held_plddt), "pearson_per_residue": per_residue,
                                "pearson_of_protein_means": per_protein,
                                "mean_abs_difference": float(np.mean(np.abs(np.concatenate(teacher) -
                                                                            np.concatenate(mine))))}
    print(json.dumps(figures["plddt_heldout"], indent=1), flush=True)
    from idrkit.cache import sequence_hash64

    model.arrays["train_sequence_hash"] = np.array(sorted({sequence_hash64(r.sequence) for r in labelled + soft}),
                                                   dtype=np.uint64)
    card = {"family": "cnn", "idrkit_version": "0.1.0", "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "training_files": files + soft_files,
            "teacher": "metapredict-plddt (pLDDT track only)", "params": PARAMS,
            "thresholds": model.meta["thresholds"],
            "threshold_rule": f"per track, the threshold whose smoothed calls give the best pooled F1 on the "
                              f"out-of-fold predictions of {args.folds} MMseqs2-clustered folds (30% identity) of "
                              "the labelled proteins; plddt: 0.7 (pLDDT 70)",
            "folds": figures, "validation": {},
            # fold and final models trained earlier (kept in --work) count with their epochs' time
            "training_seconds": time.time() - t0 + sum(h["seconds"] for h in model.meta.get("history", []))}
    if args.valid:
        card["validation"][f"{Path(args.valid).name} (pdb track)"] = evaluate_model(
            model, read_records(args.valid, require_labels=True), "pdb")
        print(json.dumps(card["validation"], indent=1))
    model.meta["card"] = {k: card[k] for k in ("family", "trained_at", "training_files", "thresholds")}
    model.save(args.out)
    write_card(Path(args.out), card)
    (Path(args.out) / "folds.json").write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    from idrkit.errors import run_main

    sys.exit(run_main(main, "train_function.py"))
