"""A binding head fine-tuned with the whole network, on homology-clustered folds (a comparison, not shipped).

The shipped ``function`` model stacks binding on the default's three disorder outputs (a logistic regression,
``benchmarks/function_stack.py``). This asks whether the network itself, fine-tuned on the binding labels,
finds more: for every fold ``i`` of ``benchmarks/fold_recipe.py``, the candidate's fold model (which never
saw fold ``i``'s labels) gains a ``binding`` head started from its ``nox`` head and is fine-tuned on the
binding proteins outside fold ``i`` (the binding loss, plus the ``nox`` loss on the same proteins' NOX labels
so that the trunk stays a disorder model), then scores fold ``i``'s proteins. No stacking, so nothing to
nest: every figure comes from a network that saw none of the held-out proteins' labels. Pooled binding AUC
after each epoch, beside the same fold models' ``nox`` score. ``--dump`` keeps the held-out scores (for
``function_stack.py --partner-oof``); ``--ship-head`` then fine-tunes the candidate's ``-all`` model (or
``--base``, the same weights) the same way on every binding protein and writes it as a model folder with a
``binding`` track (the ``partner`` of a stack model).

    python benchmarks/binding_finetune.py --runs runs/rec-cpu --candidate rec32-balanced-e6 \\
        --binding ../shared/data/train_disprot_binding.fasta --nox ../shared/data/train_disprot_nox.fasta
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from idrkit.errors import InputError, run_main
from idrkit.features.encoders import featurize_many
from idrkit.io import atomic_folder, check_model_folder_output, read_records
from idrkit.metrics import pooled_metrics
from idrkit.models import load_model
from idrkit.models.neural import pad_batch, shuffled_length_batches
from idrkit.train import read_folds


def module_with_binding_head(torch, model):
    """The CNN of a fold-model folder as a torch module with a fourth output (``binding``, from ``nox``)."""
    from idrkit.models.torch_modules import build_module

    heads = list(model.heads)
    n_features = model.arrays["feature_mean"].shape[0]
    module = build_module("cnn", model.params, n_features, len(heads) + 1)
    state = {k[2:]: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in model.arrays.items()
             if k.startswith("w.")}
    nox = heads.index("nox")
    state["out.weight"] = torch.cat([state["out.weight"], state["out.weight"][nox:nox + 1]])
    state["out.bias"] = torch.cat([state["out.bias"], state["out.bias"][nox:nox + 1]])
    module.load_state_dict(state)
    return module, nox


def padded(torch, xs, ys, batch):
    """Inputs, mask and targets (binding, nox; NaN where unknown or padding) of a batch of proteins."""
    x, mask = pad_batch([xs[p] for p in batch])
    y, _ = pad_batch([ys[p] for p in batch], fill=np.nan)
    return torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(y)


def fine_tune(torch, model, recs, ys, lengths, train, test, args, rng, scores=None):
    """Fine-tune ``model`` with a new binding head on the proteins ``train`` for ``args.epochs`` epochs;
    with ``scores``, score the proteins ``test`` before and after every epoch. Returns the module."""
    xs = [(featurize_many([r.sequence], model.spec) - model.arrays["feature_mean"]) / model.arrays["feature_std"]
          for r in recs]
    module, nox = module_with_binding_head(torch, model)
    opt = torch.optim.AdamW(module.parameters(), lr=args.lr, weight_decay=0.01)
    weights = torch.tensor([1.0, args.nox_weight])

    def score(epoch):
        module.eval()
        with torch.no_grad():
            for p in test.tolist():
                x, mask, _ = padded(torch, xs, ys, [p])
                scores[epoch][p] = torch.sigmoid(module(x, mask)[0, :, -1]).numpy()
        module.train()

    if scores is not None:
        score(0)
    for e in range(1, args.epochs + 1):
        for batch in shuffled_length_batches(lengths, train, args.batch_residues, rng):
            x, mask, y = padded(torch, xs, ys, batch)
            logits = module(x, mask)[..., [-1, nox]]
            known = ~torch.isnan(y)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[known], y[known], reduction="none")
            loss = (loss * weights.expand_as(y)[known]).sum() / known.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if scores is not None:
            score(e)
    return module


def ship_head(torch, args, runs: Path, recs, ys, lengths, rng) -> None:
    """The -all model fine-tuned on every binding protein, saved with a ``binding`` track."""
    from idrkit.cache import sequence_hash64

    base_dir = Path(args.base) if args.base else runs / f"{args.candidate}-all"
    model = load_model(base_dir)
    module = fine_tune(torch, model, recs, ys, lengths, np.arange(len(recs)), np.arange(0), args, rng)
    for key, v in module.state_dict().items():
        model.arrays[f"w.{key}"] = v.detach().float().numpy()
    model.heads = list(model.heads) + ["binding"]
    model.tracks = tuple(model.tracks) + ("binding",)
    seen = model.arrays.get("train_sequence_hash", np.zeros(0, np.uint64))
    model.arrays["train_sequence_hash"] = np.unique(np.concatenate(
        [seen, np.array([sequence_hash64(r.sequence) for r in recs], dtype=np.uint64)]))
    model.meta = dict(model.meta, heads=model.heads, thresholds=dict(model.meta.get("thresholds", {}), binding=0.5))
    model.meta["card"] = dict(model.meta.get("card", {}), binding_head={
        "script": "benchmarks/binding_finetune.py", "from": str(base_dir), "binding_file": args.binding,
        "nox_file": args.nox, "epochs": args.epochs, "lr": args.lr, "nox_weight": args.nox_weight,
        "proteins": len(recs)})
    with atomic_folder(check_model_folder_output(args.ship_head)) as tmp:
        model.save(tmp)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="a fold_recipe.py output folder")
    ap.add_argument("--candidate", required=True, help="whose fold models are fine-tuned")
    ap.add_argument("--binding", required=True)
    ap.add_argument("--nox", required=True, help="the NOX labels of the same proteins (kept in the loss)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--nox-weight", type=float, default=1.0)
    ap.add_argument("--batch-residues", type=int, default=16384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dump", default="", help="write the ids, labels and held-out scores after every epoch "
                    "(a pickle) here")
    ap.add_argument("--ship-head", default="", metavar="FOLDER", help="also fine-tune the -all model on every "
                    "binding protein for --epochs and write it here (a model folder with a binding track)")
    ap.add_argument("--base", default="", help="the model --ship-head fine-tunes (default RUNS/CANDIDATE-all)")
    args = ap.parse_args(argv)
    if args.ship_head:
        check_model_folder_output(args.ship_head)
    import torch

    runs = Path(args.runs)
    folds = read_folds(runs)
    fold_of = {f["id"].split("|")[0]: f["fold"] for f in folds if f["track"] == "nox"}
    k = 1 + max(f["fold"] for f in folds)
    recs = read_records(args.binding, require_labels=True)
    nox_labels = {r.id: r.labels for r in read_records(args.nox, require_labels=True)}
    missing = [r.id for r in recs if r.id.split("|")[0] not in fold_of or r.id not in nox_labels]
    if missing:
        raise InputError(f"{args.binding}: '{missing[0]}' is in no fold of {runs} or not in {args.nox}")
    fold = np.array([fold_of[r.id.split("|")[0]] for r in recs])
    lengths = np.array([len(r.sequence) for r in recs])
    ys = [np.stack([r.labels, nox_labels[r.id]], 1).astype(np.float32) for r in recs]
    for y in ys:
        y[y < 0] = np.nan
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    scores = {e: [None] * len(recs) for e in range(args.epochs + 1)}
    base = [None] * len(recs)  # the fold models' own nox score (numpy), as function_stack.py reports it
    t0 = time.time()
    for i in range(k):
        model = load_model(runs / f"{args.candidate}-fold{i}")
        train, test = np.flatnonzero(fold != i), np.flatnonzero(fold == i)
        for j, s in zip(test, model.predict_proba([recs[j].sequence for j in test], track="nox")):
            base[j] = s
        fine_tune(torch, model, recs, ys, lengths, train, test, args, rng, scores)
        print(f"fold {i}: {train.size} proteins fine-tuned on, {test.size} scored ({time.time() - t0:.0f} s)", flush=True)
    labels = [r.labels for r in recs]
    m = pooled_metrics(labels, base)
    print(f"binding, {len(recs)} proteins, {k} folds; pooled AUC / AP of the held-out folds")
    print(f"{'nox score of the fold models':<44} {m['auc']:.4f} {m['ap']:.4f}")
    for e in range(args.epochs + 1):
        m = pooled_metrics(labels, scores[e])
        what = "binding head before fine-tuning (= nox)" if e == 0 else f"binding head after {e} epoch(s)"
        print(f"{what:<44} {m['auc']:.4f} {m['ap']:.4f}")
    if args.dump:
        import pickle

        from idrkit.io import atomic_path

        with atomic_path(Path(args.dump)) as tmp:
            tmp.write_bytes(pickle.dumps({"ids": [r.id for r in recs], "labels": labels, "fold": fold,
                                          "scores": scores, "nox": base}))
    if args.ship_head:
        ship_head(torch, args, runs, recs, ys, lengths, rng)
        print(f"wrote {args.ship_head}: {args.candidate}-all fine-tuned with a binding head on all "
              f"{len(recs)} proteins ({args.epochs} epochs)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "binding_finetune.py"))
