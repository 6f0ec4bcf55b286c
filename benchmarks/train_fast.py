"""Train the ``fast`` model: a small CNN distilled from the shipped default on unlabelled proteomes.

Both tracks of the default model (``pdb`` and ``nox``) score the unlabelled proteins (cached on disk); the
student learns both as soft targets (no class re-weighting, so its scores stay the teacher's
probabilities). A 10% homology-clustered slice of the labelled training proteins drives early stopping.
The student keeps its teacher's thresholds (the default's, chosen on out-of-fold predictions of homology-
clustered folds by ``benchmarks/select_models.py``): it learnt to give the teacher's scores, and the labelled
training proteins, which the teacher trained on, would set thresholds on scores better than new proteins get.
``--own-thresholds`` chooses them instead from the student's own calls on those proteins (the calls rule of
``idrkit.train.calls_threshold``), for comparison. The validation file is only scored at the end.

    python benchmarks/train_fast.py --out runs/fast --checkpoints runs/fast-ckpt \\
        --unlabelled ../shared/data/unlabelled/{human_nr95,yeast_UP000002311,ecoli_UP000000625,pfalciparum_UP000001450}.fasta \\
        --train pdb:../shared/data/train_disorder_pdb.fasta nox:../shared/data/train_disprot_nox.fasta \\
        --valid ../shared/data/caid2_disorder_pdb.fasta
    # then the shipped copy: the same thresholds, hashes and card from the trained student
    python benchmarks/train_fast.py --from runs/fast --out src/idrkit/weights/fast ...(same files)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from idrkit.cache import ArrayCache, sequence_hash64
from idrkit.io import atomic_folder, check_model_folder_output, read_records
from idrkit.models import get_family, load_model
from idrkit.models.base import model_params
from idrkit.predict import DEFAULT_MODEL, get_model, weights_digest
from idrkit.records import Record
from idrkit.teachers import teacher_scores
from idrkit.train import (CALLS_RULE, evaluate_model, first_proteins, load_training, calls_threshold,
                          split_holdout, write_card)

STUDENT = {"channels": 16, "layers": 6, "kernel": 5, "dilations": [1, 2, 4, 8, 16, 32], "dropout": 0.0,
           "pos_weight": "none", "lr": 3e-3, "epochs": 6, "patience": 2, "batch_residues": 16384, "crop": 1024,
           "seed": 0}


def soft_records(seqs, teacher) -> list[Record]:
    """Unlabelled proteins with the teacher's pdb and nox scores as two soft-labelled copies."""
    out = []
    for track in ("pdb", "nox"):
        cache = ArrayCache(f"teacher-default-{track}-{weights_digest(None)}")
        scores = teacher_scores(track, seqs, fn=lambda s, t=track: teacher.predict_proba(s, track=t), cache=cache)
        out += [Record(f"u{i}", s, np.asarray(sc, dtype=np.float32), track) for i, (s, sc) in enumerate(zip(seqs, scores))]
    return out


def own_threshold(model, records, track: str) -> float:
    """The calls threshold (0.20-0.80) of the student on pooled labelled records."""
    scores = model.predict_proba([r.sequence for r in records], track=track)
    return calls_threshold([r.labels for r in records], scores, track, np.round(np.arange(0.20, 0.81, 0.01), 2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoints", default="")
    ap.add_argument("--unlabelled", nargs="+", required=True)
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--valid", default=None)
    ap.add_argument("--max-residues", type=int, default=12_000_000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="student parameters")
    ap.add_argument("--own-thresholds", action="store_true",
                    help="thresholds from the student's own calls on the labelled training proteins")
    ap.add_argument("--from", dest="trained", default=None,
                    help="a student already trained by this script (e.g. its output or checkpoint): only choose "
                         "thresholds and write the model and card")
    args = ap.parse_args(argv)
    import json

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    out = check_model_folder_output(args.out)  # a model folder or a new one, never another folder
    params = {**STUDENT, **{k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}}
    teacher = get_model(None)
    seqs, unlabelled_files = first_proteins(args.unlabelled, args.max_residues, "teacher (default model, pdb and nox)")
    labelled, files = load_training(args.train)
    if args.trained:
        model = load_model(args.trained)
        params = {**params, **model_params(model.params)}
    else:
        soft = soft_records(seqs, teacher)
        print(f"{len(seqs)} unlabelled proteins, {sum(map(len, seqs))} residues scored by the default "
              f"({time.time() - t0:.0f} s)", flush=True)
        _, tune = split_holdout(labelled, 0.1, seed=0)
        model = get_family("cnn")(**params, checkpoint_dir=args.checkpoints, progress=True)
        model.fit(soft, valid=tune)
    if args.own_thresholds:
        model.meta["thresholds"] = {t: own_threshold(model, [r for r in labelled if r.track == t], t)
                                    for t in ("pdb", "nox")}
        rule = f"per track, {CALLS_RULE}, of the student's scores of all labelled training proteins of that definition"
    else:
        model.meta["thresholds"] = {t: float(teacher.meta["thresholds"][t]) for t in ("pdb", "nox")}
        rule = f"its teacher's (the default model's): {teacher.meta.get('threshold_rule', 'as its card says')}"

    # what the student saw, and what its teacher saw (it learnt that too)
    own = [sequence_hash64(s) for s in seqs + [r.sequence for r in labelled]]
    model.arrays["train_sequence_hash"] = np.union1d(teacher.arrays["train_sequence_hash"],
                                                     np.array(own, dtype=np.uint64))
    card = {"family": "cnn", "idrkit_version": "0.1.0", "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "training_files": files + unlabelled_files,
            "teacher": f"the shipped default model ({DEFAULT_MODEL.name}, weights {weights_digest(None)}), both tracks",
            "params": params, "thresholds": model.meta["thresholds"],
            "threshold_rule": rule,
            "validation": {}, "training_seconds": 0.0}
    if args.valid:
        card["validation"][f"{Path(args.valid).name} (pdb track)"] = evaluate_model(
            model, read_records(args.valid, require_labels=True), "pdb")
    # with --from, the epochs ran earlier: their time is in the model's history
    card["training_seconds"] = time.time() - t0 + (sum(h["seconds"] for h in model.meta.get("history", []))
                                                   if args.trained else 0.0)
    model.meta["card"] = {k: card[k] for k in ("family", "trained_at", "training_files", "thresholds")}
    with atomic_folder(out) as tmp:  # a failure leaves an earlier model there as it was
        model.save(tmp)
        write_card(tmp, card)
    print(json.dumps(card["validation"], indent=1))
    return 0


if __name__ == "__main__":
    from idrkit.errors import run_main

    sys.exit(run_main(main, "train_fast.py"))
