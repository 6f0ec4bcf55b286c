"""A probe: can a head trained on the within-IDR binding labels alone tell which disordered residues bind?

On fold 0 of ``benchmarks/train_function.py`` (same MMseqs2 folds, rebuilt from the same files), a CNN
learns only ``train_disprot_binding_idr.fasta`` (binding against disordered non-binding residues) from the
other folds; its within-IDR AUC on fold 0 is printed beside the fold model's ``nox`` score, and products of
the two are scored as binding predictors over all residues.

    python benchmarks/binding_idr_probe.py 4      # epochs; needs runs/function-folds/fold0 from train_function.py
"""

import sys

import numpy as np

from idrkit.metrics import pooled_metrics
from idrkit.models import get_family, load_model
from idrkit.records import Record
from idrkit.train import homology_folds, load_training


def main(argv=None) -> int:
    import torch

    epochs = int((argv or sys.argv[1:])[0])
    torch.set_num_threads(1)
    D = "../shared/data"
    recs, _ = load_training([f"binding:{D}/train_disprot_binding_idr.fasta"])
    allb, _ = load_training([f"binding:{D}/train_disprot_binding.fasta"])
    lab_all = {r.sequence: r.labels for r in allb}
    # same folds as the function run: rebuild over the same unique sequences
    labelled, _ = load_training([f"pdb:{D}/train_disorder_pdb.fasta", f"nox:{D}/train_disprot_nox.fasta", f"binding:{D}/train_disprot_binding.fasta", f"linker:{D}/train_disprot_linker.fasta"])
    unique = list(dict.fromkeys(r.sequence for r in labelled))
    fold_of = dict(zip(unique, homology_folds([Record(str(i), s) for i, s in enumerate(unique)], 3)))
    k = 0
    train = [r for r in recs if fold_of[r.sequence] != k]
    held = [r for r in recs if fold_of[r.sequence] == k]
    m = get_family("cnn")(channels=32, layers=8, epochs=epochs, progress=False, lr=2e-3, patience=5)
    m.fit(train)
    fm = load_model(f"runs/function-folds/fold{k}")
    seqs = [r.sequence for r in held]
    b_idr = m.predict_proba(seqs, track="binding")
    nox = fm.predict_proba(seqs, track="nox")
    print("within-IDR AUC, idr head:", pooled_metrics([r.labels for r in held], b_idr)["auc"])
    print("within-IDR AUC, nox:", pooled_metrics([r.labels for r in held], nox)["auc"])
    lab = [lab_all[s] for s in seqs]
    print("binding AUC: nox", pooled_metrics(lab, nox)["auc"], "fold binding head", pooled_metrics(lab, fm.predict_proba(seqs, track="binding"))["auc"],
          "nox*idr", pooled_metrics(lab, [a * b for a, b in zip(nox, b_idr)])["auc"],
          "nox*sqrt(idr)", pooled_metrics(lab, [a * np.sqrt(b) for a, b in zip(nox, b_idr)])["auc"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
