"""Both tracks of a model on its own homology-held-out training proteins, beside metapredict.

`idrkit train` and `idrkit distil` hold out one fold of the labelled proteins (MMseqs2 clusters at 30%
identity, ``--holdout 0.1``, ``--seed``); that fold was never trained on. This script rebuilds the same fold
from the same files and seed, and scores the model's ``pdb`` and ``nox`` tracks on the held-out proteins of
each definition, beside metapredict v3 and v2 (their scores come from the teacher cache, computed on first
use). The fold also chose the model's thresholds, so F1 and MCC here are slightly optimistic; AUC and AP
are not affected.

    python benchmarks/heldout_tracks.py --model src/idrkit/weights/default \
        --train pdb:../shared/data/train_disorder_pdb.fasta pdb:../shared/data/caid1_disorder_pdb.fasta \
                nox:../shared/data/train_disprot_nox.fasta
"""

from __future__ import annotations

import argparse
import sys

from idrkit.metrics import pooled_metrics
from idrkit.models import load_model
from idrkit.models.base import resolve_threshold
from idrkit.teachers import teacher_scores
from idrkit.train import load_training, split_holdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", nargs="+", required=True, help="the model's labelled training files, in order")
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)
    records, _ = load_training(args.train)
    _, held = split_holdout(records, args.holdout, args.seed)
    model = load_model(args.model)
    rows = []
    for track in ("pdb", "nox"):
        recs = [r for r in held if r.track == track]
        if not recs:
            continue
        seqs, labels = [r.sequence for r in recs], [r.labels for r in recs]
        preds = {f"idrkit {track} track": (model.predict_proba(seqs, track=track), resolve_threshold(model, track))}
        for t in ("metapredict-v3", "metapredict-v2"):
            preds[t] = (teacher_scores(t, seqs), 0.5)
        for name, (scores, thr) in preds.items():
            m = pooled_metrics(labels, scores, threshold=thr)
            rows.append((f"{track} held-out ({len(recs)} proteins, {m['residues']} residues)", name, m, thr))
    head = f"{'held-out set':<45} {'predictor':<22} {'AUC':>6} {'AP':>6} {'F-max':>6} {'F1':>6} {'MCC':>6} {'thr':>6}"
    print(head)
    print("-" * len(head))
    md = ["| held-out set | predictor | AUC | AP | F-max | F1 | MCC | threshold |", "|---|---|---|---|---|---|---|---|"]
    for where, name, m, thr in rows:
        print(f"{where:<45} {name:<22} {m['auc']:>6.3f} {m['ap']:>6.3f} {m['fmax']:>6.3f} {m['f1']:>6.3f} "
              f"{m['mcc']:>6.3f} {thr:>6.3f}")
        md.append(f"| {where} | {name} | {m['auc']:.3f} | {m['ap']:.3f} | {m['fmax']:.3f} | {m['f1']:.3f} | "
                  f"{m['mcc']:.3f} | {thr:.3f} |")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    from idrkit.errors import run_main

    sys.exit(run_main(main, "heldout_tracks.py"))
