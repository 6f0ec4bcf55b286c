"""The default model's recipe on homology-clustered folds, in one run (short on a GPU, possible on a CPU).

Two steps.

``pack`` (needs ``../shared/data``, MMseqs2 and metapredict, whose scores come from the teacher cache) writes
one compressed file: the unlabelled proteins with metapredict v3's scores, and the labelled training proteins
(``pdb`` and ``nox``) with their labels, v3's scores and their fold: the labelled proteins of both tracks are
clustered together by MMseqs2 at 30% identity and the clusters split into ``--folds`` folds.

``train`` (needs torch; a GPU makes it minutes) reads the pack and, for every architecture asked for:

1. distils a CNN from v3 on the unlabelled proteins (``teacher`` head only; whole proteins, no crops, so
   that a ``context`` CNN sees the mean of the whole protein as it does at prediction);
2. for every fine-tuning variant and every fold ``k``, fine-tunes the distilled CNN on the labelled proteins
   outside fold ``k`` (``pdb``, ``nox`` and, to keep what the teacher taught, the ``teacher`` head on those
   proteins and on a fresh random sample of unlabelled proteins every epoch), saving a snapshot at each of
   ``--snapshots`` epochs; then the same on all labelled proteins (``-all``, the candidate to ship). With
   ``--pairs``, instead, one fine-tune per pair of folds on the labelled proteins outside both
   (``ARCH-VARIANT-eE-foldI-M``): a stacker fitted on out-of-fold scores without fold I then learns from
   scores of models that never saw fold I's labels either (``benchmarks/function_stack.py --nested``).

Architectures (``--archs``): CNNs (``plain32`` is the shipped default's shape, ``ctx32`` adds the protein's
mean hidden state, ``ctx48`` is wider, ``rec32`` adds a BiLSTM over 16-residue chunk means, ``rec32m`` a second one after the middle layer) and ``lstm52``, a bidirectional LSTM shaped like metapredict v3 (two
layers of 52 units; numpy prediction, slower than the CNNs). ``--set channels=8 layers=2`` shrinks every architecture for a
trial. ``--blur nox=3`` leaves the ``nox`` labels within 3 residues of a boundary between order and disorder
out of fine-tuning (DisProt's region boundaries are coarse). Every model is an idrkit model folder ``ARCH-VARIANT-eE-foldK`` or ``ARCH-VARIANT-eE-all`` under ``--out``,
with ``folds.json`` (track, id and fold of every labelled protein). ``benchmarks/select_models.py`` scores them on
the pooled out-of-fold predictions and chooses; the validation file is not in the pack.

    D=../shared/data
    python benchmarks/fold_recipe.py pack --out runs/recipe/pack.npz --folds 5 \\
        --train pdb:$D/train_disorder_pdb.fasta nox:$D/train_disprot_nox.fasta \\
        --unlabelled $D/unlabelled/{ecoli_UP000000625,fly_nr95,human_nr95,pfalciparum_UP000001450,spombe_UP000002485,yeast_UP000002311,cthermophilum_UP000008066,panserina_UP000001197,pberghei_UP000074855,pknowlesi_UP000031513,celegans_ppi,swissprot_deeploc}.fasta
    python benchmarks/fold_recipe.py train --pack runs/recipe/pack.npz --out runs/recipe/models --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from idrkit.errors import InputError, run_main
from idrkit.io import atomic_folder, atomic_path, check_model_folder_output

HEADS = ("pdb", "nox", "teacher")
ARCHS = {
    # name: CNN parameters (the shipped default is 32 channels x 8 layers without context)
    "ctx32": {"channels": 32, "layers": 8, "kernel": 5, "dilations": [1, 2, 4, 8], "context": True},
    "plain32": {"channels": 32, "layers": 8, "kernel": 5, "dilations": [1, 2, 4, 8], "context": False},
    "ctx48": {"channels": 48, "layers": 8, "kernel": 5, "dilations": [1, 2, 4, 8], "context": True},
    # the default's shape plus a BiLSTM over means of 16-residue chunks (context from the whole protein)
    "rec32": {"channels": 32, "layers": 8, "kernel": 5, "dilations": [1, 2, 4, 8], "context": False,
              "recurrent": 16},
    # rec32 with a second chunk recurrence after the middle layer (the layers after it use the context)
    "rec32m": {"channels": 32, "layers": 8, "kernel": 5, "dilations": [1, 2, 4, 8], "context": False,
               "recurrent": 16, "recurrent_mid": True},
    # a recurrent student shaped like metapredict v3 (2 bidirectional LSTM layers of 52 units); it predicts
    # with numpy, one time step at a time: too slow for the default, fit for a second model
    "lstm52": {"family": "bilstm", "channels": 52, "layers": 8},
}
VARIANTS = {"balanced": "balanced", "unweighted": "none"}  # class weight of the labelled heads


# ---------------------------------------------------------------------------------------------- pack
def make_pack(args) -> int:
    from idrkit.io.readers import iter_records
    from idrkit.teachers import teacher_scores
    from idrkit.train import file_sha256, homology_folds, load_training

    labelled, files = load_training(args.train)
    folds = homology_folds(labelled, k=args.folds, seed=args.seed)
    unl = []
    for path in args.unlabelled:
        these = [r.sequence for r in iter_records(path, check_duplicates=False)]
        files.append({"path": str(path), "track": "teacher", "sha256": file_sha256(path), "proteins": len(these),
                      "kept_after_dedup": len(these)})
        unl += these
    unl = list(dict.fromkeys(unl))
    lab_seqs = [r.sequence for r in labelled]
    v3 = teacher_scores(args.teacher, unl + lab_seqs)
    seqs = unl + lab_seqs
    lengths = np.array([len(s) for s in seqs], dtype=np.int32)
    scores = np.concatenate(v3).astype(np.float32)
    q = np.clip(np.round(scores * 250), 0, 250).astype(np.uint8)
    labels = np.concatenate([r.labels.astype(np.int8) for r in labelled])
    out = Path(args.out)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:  # no half-written pack if this fails
        np.savez_compressed(
            fh, sequences=np.frombuffer("".join(seqs).encode("ascii"), dtype=np.uint8), lengths=lengths,
            n_unlabelled=np.array(len(unl)), v3_delta=np.diff(q, prepend=np.uint8(0)),
            labels=labels, tracks=np.array([r.track for r in labelled]), ids=np.array([r.id for r in labelled]),
            folds=folds.astype(np.int8), teacher=np.array(args.teacher), files=np.array(json.dumps(files)))
    print(f"{out}: {len(unl)} unlabelled ({lengths[:len(unl)].sum():,} residues), {len(labelled)} labelled "
          f"({lengths[len(unl):].sum():,} residues), {args.folds} folds; {out.stat().st_size / 1e6:.1f} MB")
    return 0


def read_pack(path: str):
    z = np.load(path)
    seq_bytes = z["sequences"].tobytes().decode("ascii")
    lengths = z["lengths"].astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    seqs = [seq_bytes[s:s + n] for s, n in zip(starts.tolist(), lengths.tolist())]
    v3 = np.cumsum(z["v3_delta"].astype(np.int64)).astype(np.uint8).astype(np.float32) / 250.0
    return {"seqs": seqs, "lengths": lengths, "starts": starts, "n_unl": int(z["n_unlabelled"]), "v3": v3,
            "labels": z["labels"], "tracks": z["tracks"].tolist(), "ids": z["ids"].tolist(),
            "folds": z["folds"].astype(np.int64),
            "teacher": str(z["teacher"]) if "teacher" in z.files else "metapredict-v3",
            "files": json.loads(str(z["files"])) if "files" in z.files else []}


# ---------------------------------------------------------------------------------------------- features
def _featurize_chunk(job):
    from idrkit.features.encoders import featurize_many
    from idrkit.models.neural import neural_feature_spec

    path, shape, row0, seqs, mean, std = job
    out = np.memmap(path, dtype=np.float16, mode="r+", shape=shape)
    x = featurize_many(seqs, neural_feature_spec())
    x -= mean
    x /= std
    out[row0:row0 + x.shape[0]] = x.astype(np.float16)
    out.flush()
    return x.shape[0]


def featurize_all(seqs, starts, workers: int, scratch: Path, standardise=None):
    """Standardised features of every residue (float16, rows in sequence order) and their mean and spread
    (``standardise`` = (mean, std) to use given ones); the workers share a temporary file in ``scratch``,
    removed whatever happens."""
    from idrkit.features.encoders import featurize_many
    from idrkit.models.neural import neural_feature_spec

    rng = np.random.default_rng(0)
    sample = [seqs[i] for i in rng.choice(len(seqs), min(len(seqs), 500), replace=False)]
    feats = featurize_many(sample, neural_feature_spec())
    if standardise is not None:
        mean, std = (np.asarray(a, dtype=np.float32) for a in standardise)
        if mean.shape != (feats.shape[1],) or std.shape != (feats.shape[1],):
            raise InputError(f"the starting model has {mean.size} features, these proteins {feats.shape[1]}")
    else:
        mean = feats.mean(axis=0).astype(np.float32)
        std = feats.std(axis=0)
        std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
    n = int(sum(len(s) for s in seqs))
    shape = (n, feats.shape[1])
    fd, name = tempfile.mkstemp(prefix="features.", suffix=".f16", dir=scratch)  # never a file of the user's
    os.close(fd)
    path = Path(name)
    try:
        return _featurize_into(path, seqs, starts, shape, mean, std, workers), mean, std
    finally:
        path.unlink(missing_ok=True)


def _featurize_into(path: Path, seqs, starts, shape, mean, std, workers: int) -> np.ndarray:
    """Workers write their rows into the memory-mapped ``path``; returns the rows in memory."""
    np.memmap(path, dtype=np.float16, mode="w+", shape=shape).flush()
    jobs, i = [], 0
    while i < len(seqs):
        j, size = i, 0
        while j < len(seqs) and size < 400_000:
            size += len(seqs[j])
            j += 1
        jobs.append((str(path), shape, int(starts[i]), seqs[i:j], mean, std))
        i = j
    if workers > 1:
        with Pool(workers) as pool:
            done = sum(pool.imap_unordered(_featurize_chunk, jobs))
    else:
        done = sum(map(_featurize_chunk, jobs))
    assert done == shape[0]
    return np.array(np.memmap(path, dtype=np.float16, mode="r", shape=shape))


# ---------------------------------------------------------------------------------------------- training
class Data:
    """Features and targets of every residue on the device, and batches of whole proteins of similar length."""

    def __init__(self, torch, device, x, pack, batch_residues: int):
        self.torch, self.device = torch, device
        self.x = torch.from_numpy(x).to(device)
        n = x.shape[0]
        y = np.full((n, len(HEADS)), np.nan, dtype=np.float16)
        y[:, 2] = pack["v3"]
        n_unl = pack["n_unl"]
        lab0 = int(pack["starts"][n_unl])
        labels = pack["labels"].astype(np.float16)
        labels[labels < 0] = np.nan
        col = np.repeat([HEADS.index(t) for t in pack["tracks"]], pack["lengths"][n_unl:])
        rows = np.arange(lab0, n)
        y[rows, col] = labels
        self.y = torch.from_numpy(y).to(device)
        self.starts, self.lengths = pack["starts"], pack["lengths"]
        self.batch_residues = batch_residues

    def batches(self, proteins: np.ndarray, rng) -> list[np.ndarray]:
        """Proteins sorted by length, cut into batches of about ``batch_residues`` padded residues, shuffled."""
        from idrkit.models.neural import shuffled_length_batches

        return shuffled_length_batches(self.lengths, proteins, self.batch_residues, rng)

    def gather(self, batch: np.ndarray):
        torch = self.torch
        lengths = torch.from_numpy(self.lengths[batch]).to(self.device)
        starts = torch.from_numpy(self.starts[batch]).to(self.device)
        pos = torch.arange(int(lengths.max()), device=self.device)
        mask = pos[None, :] < lengths[:, None]
        idx = torch.where(mask, starts[:, None] + pos[None, :], torch.zeros_like(starts)[:, None])
        x = self.x[idx].float() * mask[..., None]
        y = torch.where(mask[..., None], self.y[idx].float(), torch.nan)  # padding is unknown
        return x, mask.float(), y


def run_epochs(torch, module, data, epochs: int, proteins_of_epoch, head_weights, pos_weight, lr: float,
               rng, device, on_epoch=None, budget_s: float = 0.0, log=print, amp: bool = True):
    """AdamW, warm-up then cosine decay over ``epochs``; ``proteins_of_epoch(e)`` gives each epoch's proteins.

    With ``budget_s``, the first epoch's time sets how many epochs fit in the budget (at most ``epochs``) and
    the decay is stretched over those. Returns the number of epochs run."""
    from idrkit.models.trainer import head_bce

    plans = [data.batches(proteins_of_epoch(e), rng) for e in range(epochs)]
    total = [sum(len(p) for p in plans)]
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-2)
    warm = max(1, len(plans[0]) // 4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total[0])))))
    w = torch.tensor(head_weights, device=device)
    pw = torch.tensor(pos_weight, device=device)
    amp = amp and device.type == "cuda"  # bfloat16 autocast on a GPU
    t0 = time.time()
    e = 0
    while e < epochs:
        plan = plans[e]
        module.train()
        tot, cnt = 0.0, 0
        for batch in plan:
            x, mask, y = data.gather(batch)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                logits = module(x, mask)
            loss = head_bce(torch, logits, y, w, pw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += float(loss.detach())
            cnt += 1
        module.eval()
        log(f"  epoch {e + 1}/{epochs}: loss {tot / max(cnt, 1):.4f} ({time.time() - t0:.0f} s)")
        if on_epoch is not None:
            on_epoch(e + 1)
        if budget_s and e == 0:
            epochs = max(1, min(epochs, int(budget_s // max(time.time() - t0, 1e-3))))
            total[0] = sum(len(p) for p in plans[:epochs])
            log(f"  {epochs} epochs fit in the time budget")
        e += 1
    return epochs


def save_model(folder: Path, module, arch: dict, mean, std, hashes, card: dict):
    from idrkit.models import get_family

    params = {k: v for k, v in arch.items() if k != "family"}
    model = get_family(arch.get("family", "cnn"))(**params, dropout=0.0)
    model.arrays = {"feature_mean": mean, "feature_std": std}
    for k, v in module.state_dict().items():
        model.arrays[f"w.{k}"] = v.detach().float().cpu().numpy()
    model.arrays["train_sequence_hash"] = hashes
    model.heads = list(HEADS)
    model.tracks = ("pdb", "nox")
    model.meta = {"heads": list(HEADS), "thresholds": {"pdb": 0.5, "nox": 0.5}, "card": card}
    check_model_folder_output(folder)  # replaces an earlier model (checkpoint), never another folder
    with atomic_folder(folder) as tmp:  # a run stopped while saving keeps the previous checkpoint
        model.save(tmp)


def train(args) -> int:
    import torch

    from idrkit.cache import sequence_hash64
    from idrkit.models.neural import NeuralParams, balanced_pos_weight
    from idrkit.models.torch_modules import build_module

    t_start = time.time()
    blur = dict(_blur_setting(kv) for kv in args.blur)  # bad settings are refused before any work
    settings = dict(_setting(kv) for kv in args.set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        line = f"[{time.time() - t_start:6.0f} s] {msg}"
        print(line, flush=True)
        with open(out / "log.txt", "a") as fh:
            fh.write(line + "\n")

    pack = read_pack(args.pack)
    if args.max_unlabelled and pack["n_unl"] > args.max_unlabelled:  # a small run (tests, CPU trials)
        keep = args.max_unlabelled
        drop = pack["n_unl"] - keep
        for k in ("seqs",):
            pack[k] = pack[k][:keep] + pack[k][pack["n_unl"]:]
        cut0, cut1 = int(pack["starts"][keep]), int(pack["starts"][pack["n_unl"]])
        pack["v3"] = np.concatenate([pack["v3"][:cut0], pack["v3"][cut1:]])
        pack["lengths"] = np.concatenate([pack["lengths"][:keep], pack["lengths"][pack["n_unl"]:]])
        pack["starts"] = np.concatenate(([0], np.cumsum(pack["lengths"])[:-1]))
        pack["n_unl"] = keep
        log(f"kept {keep} unlabelled proteins (dropped {drop})")
    n_unl, n_prot = pack["n_unl"], len(pack["seqs"])
    lab_starts = pack["starts"][n_unl:] - pack["starts"][n_unl]  # each labelled protein's first label
    # the labels of each labelled protein, all of them: the balanced class weights count these
    labels_of = [pack["labels"][s:s + n] for s, n in zip(lab_starts, pack["lengths"][n_unl:])]
    if blur:  # coarse boundaries of a track are not trained on (the balanced class weights keep all labels)
        pack["labels"] = np.concatenate([blur_boundaries(lb, blur[t]) if t in blur else lb
                                         for lb, t in zip(labels_of, pack["tracks"])])
        log("labels not trained on: " + ", ".join(f"{t}: {w} residues each side of a boundary" for t, w in blur.items()))
    folds = pack["folds"]
    n_folds = int(folds.max()) + 1
    if args.distil_epochs == 0 and not args.init:
        raise InputError("--distil-epochs 0 fine-tunes the --init model as it is: give --init")
    if args.name and len(args.archs) != 1:
        raise InputError("--name names the models of one architecture: give one --archs")
    if args.pairs and n_folds < 3:
        raise InputError(f"--pairs needs at least 3 folds (the pack has {n_folds}): a pair of 2 leaves no labels")
    # which labelled proteins each fine-tune leaves out: one fold (and none: all), or, with --pairs, two folds
    keys = ([(i, m) for i in range(n_folds) for m in range(i + 1, n_folds)] if args.pairs
            else list(range(n_folds)) + ["all"])
    for arch_key in args.archs:  # refuse, before any work, to replace a folder that is not a model
        arch_name = args.name or arch_key
        check_model_folder_output(out / f"{arch_name}-distilled")
        for variant in args.variants:
            for k in keys:
                for e in args.snapshots:
                    check_model_folder_output(out / _model_name(arch_name, variant, e, k))
        if args.tar_to:  # the archive is a new file, never one already there
            tar_path = Path(args.tar_to) / f"{arch_name}.tar.gz"
            if tar_path.exists() or any(tar_path.parent.glob(f"{tar_path.name}.part*")):
                raise InputError(f"{tar_path}: already there; --tar-to writes only new files (name another folder)")
    (out / "folds.json").write_text(json.dumps(
        [{"track": t, "id": i, "fold": int(f)} for t, i, f in zip(pack["tracks"], pack["ids"], folds)]))
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    scratch = Path(args.scratch or out)
    init = None
    if args.init:  # its standardisation too, so that its weights mean what they meant
        from idrkit.models import load_model

        init = load_model(args.init)
        if init.family != "cnn" or not all(k in init.arrays for k in ("feature_mean", "feature_std")):
            raise InputError(f"--init {args.init}: not a CNN model folder")
    x, mean, std = featurize_all(pack["seqs"], pack["starts"], args.workers, scratch,
                                 None if init is None else (init.arrays["feature_mean"], init.arrays["feature_std"]))
    log(f"features of {x.shape[0]:,} residues ({n_unl} unlabelled, {n_prot - n_unl} labelled proteins)")
    data = Data(torch, device, x, pack, args.batch_residues)
    del x
    hashes = np.array([sequence_hash64(s) for s in pack["seqs"]], dtype=np.uint64)
    unl = np.arange(n_unl)
    lab = np.arange(n_unl, n_prot)
    # the class weights of the balanced variant, per fold: sqrt(neg/pos) of each labelled head's training labels
    balanced = {}
    for k in keys:
        keep = _training(folds, k)
        balanced[k] = [balanced_pos_weight(np.concatenate([lb for lb, t, use in zip(labels_of, pack["tracks"], keep)
                                                           if use and t == h])) for h in ("pdb", "nox")] + [1.0]
    for arch_key in args.archs:
        arch = {**ARCHS[arch_key], **settings}
        arch_name = args.name or arch_key
        p = NeuralParams(**{k: v for k, v in arch.items() if k != "family"}, dropout=0.0)
        module = build_module(arch.get("family", "cnn"), p, len(mean), len(HEADS)).to(device)
        if init is not None:
            log(f"{arch_name}: starting from {args.init} ({_warm_start(torch, module, init)})")
        t_arch = time.time()
        base_card = {"recipe": "benchmarks/fold_recipe.py", "arch": arch_name, "arch_of": arch_key, **arch,
                     "distil_proteins": n_unl, "teacher": pack["teacher"], "distil_lr": args.lr,
                     "ft_lr": args.ft_lr, "batch_residues": args.batch_residues, "teacher_weight": args.teacher_weight,
                     "blur": blur,
                     "device": str(device), "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "training_files": pack["files"], "init": args.init}

        def distil_checkpoint(e, arch=arch, arch_name=arch_name, base_card=base_card):
            save_model(out / f"{arch_name}-distilled", module, arch, mean, std, hashes[:n_unl],
                       dict(base_card, distil_epochs=e))

        if args.distil_epochs:
            log(f"{arch_name}: distilling from v3 on {n_unl} proteins")
            n_ep = run_epochs(torch, module, data, args.distil_epochs, lambda e: unl, [0.0, 0.0, 1.0],
                              [1.0, 1.0, 1.0], args.lr, rng, device, budget_s=args.distil_budget, log=log,
                              on_epoch=distil_checkpoint, amp=not args.no_amp)
        else:  # fine-tune the --init model as it is
            n_ep = 0
            log(f"{arch_name}: no further distillation ({args.init} as it is)")
        with torch.no_grad():  # the labelled heads start from the teacher head (and serve as it when saved)
            module.out.weight[:2] = module.out.weight[2]
            module.out.bias[:2] = module.out.bias[2]
        distilled = {k: v.detach().clone() for k, v in module.state_dict().items()}
        t_distil = time.time() - t_arch
        base_card["distil_epochs"] = n_ep
        save_model(out / f"{arch_name}-distilled", module, arch, mean, std, hashes[:n_unl], base_card)
        for variant in args.variants:
            for k in keys:
                train_lab = lab[_training(folds, k)]
                pw = balanced[k] if VARIANTS[variant] == "balanced" else [1.0, 1.0, 1.0]
                lab_res = int(data.lengths[train_lab].sum())
                mean_len = float(data.lengths[unl].mean())
                n_sample = min(n_unl, int(args.joint_ratio * lab_res / mean_len))

                def proteins(e, train_lab=train_lab, n_sample=n_sample):
                    return np.concatenate([train_lab, rng.choice(unl, n_sample, replace=False)])

                module.load_state_dict(distilled)
                t_ft = time.time()
                name = f"{arch_name}-{variant}"
                log(f"{name} fold {k}: {train_lab.size} labelled + {n_sample} unlabelled proteins an epoch")
                train_hashes = np.unique(np.concatenate([hashes[:n_unl], hashes[train_lab]]))

                def snapshot(e, k=k, variant=variant, pw=tuple(pw)):
                    if e in args.snapshots:
                        card = dict(base_card, variant=variant, pos_weight=list(pw), epochs=e,
                                    schedule_epochs=max(args.snapshots),
                                    fold=k, folds=n_folds, joint_ratio=args.joint_ratio, nox_weight=args.nox_weight,
                                    seconds=round(t_distil + time.time() - t_ft, 1))
                        save_model(out / _model_name(arch_name, variant, e, k), module, arch, mean, std,
                                   train_hashes, card)

                run_epochs(torch, module, data, max(args.snapshots), proteins,
                           [1.0, args.nox_weight, args.teacher_weight],
                           pw, args.ft_lr, rng, device, on_epoch=snapshot, log=log, amp=not args.no_amp)
        log(f"{arch_name}: done")
        if args.tar_to:
            import tarfile

            with atomic_path(Path(args.tar_to) / f"{arch_name}.tar.gz") as tmp, tarfile.open(tmp, "w:gz") as tar:
                for f in sorted(out.glob(f"{arch_name}-*")):
                    tar.add(f, arcname=f.name)
                tar.add(out / "folds.json", arcname="folds.json")
                tar.add(out / "log.txt", arcname=f"log-{arch_name}.txt")
            _split(Path(args.tar_to) / f"{arch_name}.tar.gz", 15_000_000)
        if args.deadline and time.time() - t_start > args.deadline:
            log("deadline reached: no further architectures")
            break
    return 0


def blur_boundaries(labels: np.ndarray, width: int) -> np.ndarray:
    """A protein's labels with the ``width`` residues on each side of every change between ordered (0) and
    disordered (1) set to unknown (-1): coarse region boundaries (e.g. DisProt's) are not trained on."""
    out = np.array(labels, dtype=np.int8, copy=True)
    if width <= 0 or out.size < 2:
        return out
    known = out >= 0
    change = np.flatnonzero(known[1:] & known[:-1] & (out[1:] != out[:-1])) + 1  # first residue after a change
    for c in change:
        out[max(0, c - width):c + width] = -1
    return out


def _training(folds: np.ndarray, key) -> np.ndarray:
    """Which labelled proteins a fine-tune learns from: all (``"all"``), those outside fold K, or, for a pair
    (I, M), those outside both folds."""
    if key == "all":
        return np.ones(len(folds), bool)
    return ~np.isin(folds, key)


def _model_name(arch_name: str, variant: str, epochs: int, fold) -> str:
    """The folder of a fine-tuned model: ``ARCH-VARIANT-eE-foldK``, ``ARCH-VARIANT-eE-all``, or, left out two
    folds, ``ARCH-VARIANT-eE-foldI-M``."""
    if isinstance(fold, tuple):
        return f"{arch_name}-{variant}-e{epochs}-fold{fold[0]}-{fold[1]}"
    return f"{arch_name}-{variant}-e{epochs}-{'all' if fold == 'all' else f'fold{fold}'}"


def _warm_start(torch, module, src) -> str:
    """Copies the weights of the model ``src`` into ``module`` wherever names and shapes agree (the parts
    the model lacks, e.g. a recurrent part, keep their initialisation); says what it did."""
    state = module.state_dict()
    copied = [k for k in state if f"w.{k}" in src.arrays and tuple(src.arrays[f"w.{k}"].shape) == tuple(state[k].shape)]
    for k in copied:
        state[k] = torch.from_numpy(np.array(src.arrays[f"w.{k}"]))
    module.load_state_dict(state)
    return f"{len(copied)} of {len(state)} weight arrays copied"


def _blur_setting(kv: str) -> tuple[str, int]:
    track, sep, width = kv.partition("=")
    if not sep or track not in ("pdb", "nox") or not width.isdigit():
        raise InputError(f"--blur {kv!r}: give TRACK=RESIDUES, e.g. nox=3 (tracks: pdb, nox)")
    return track, int(width)


def _setting(kv: str):
    key, sep, value = kv.partition("=")
    if not sep or key not in ("channels", "layers", "kernel", "recurrent"):
        raise InputError(f"--set {kv}: expected channels=N, layers=N, kernel=N or recurrent=N")
    return key, int(value)


def _split(path: Path, size: int) -> None:
    """Cut a file into ``NAME.partK`` pieces of at most ``size`` bytes (``cat NAME.part*`` joins them)."""
    if path.stat().st_size <= size:
        return
    with open(path, "rb") as fh:
        k = 0
        while chunk := fh.read(size):
            (path.parent / f"{path.name}.part{k}").write_bytes(chunk)
            k += 1
    path.unlink()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="labelled and unlabelled proteins with v3 scores and folds, one file")
    pk.add_argument("--out", required=True)
    pk.add_argument("--train", nargs="+", required=True, help="TRACK:FASTA labelled files")
    pk.add_argument("--unlabelled", nargs="+", required=True)
    pk.add_argument("--folds", type=int, default=5)
    pk.add_argument("--seed", type=int, default=0)
    pk.add_argument("--teacher", default="metapredict-v3", help="whose scores the students learn (default v3)")
    tr = sub.add_parser("train", help="distil, then fine-tune per fold and on all labelled proteins")
    tr.add_argument("--pack", required=True)
    tr.add_argument("--out", required=True)
    tr.add_argument("--device", default="cpu")
    tr.add_argument("--archs", nargs="+", default=["ctx32"], choices=sorted(ARCHS))
    tr.add_argument("--variants", nargs="*", default=["balanced", "unweighted"], choices=sorted(VARIANTS),
                    help="fine-tuning variants (none: distil only)")
    tr.add_argument("--distil-epochs", type=int, default=30, help="0: fine-tune the --init model as it is")
    tr.add_argument("--distil-budget", type=float, default=0.0, help="stop distilling after this many seconds")
    tr.add_argument("--snapshots", type=int, nargs="+", default=[3, 6], help="fine-tuning epochs to save")
    tr.add_argument("--joint-ratio", type=float, default=1.0,
                    help="unlabelled residues per labelled residue in every fine-tuning epoch")
    tr.add_argument("--teacher-weight", type=float, default=1.0)
    tr.add_argument("--nox-weight", type=float, default=1.0, help="weight of the nox head's loss in fine-tuning")
    tr.add_argument("--blur", nargs="*", default=[], metavar="TRACK=RESIDUES",
                    help="fine-tuning: do not train on the labels of TRACK within RESIDUES of a boundary between "
                         "order and disorder (coarse boundaries, e.g. nox=3)")
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--ft-lr", type=float, default=1e-3)
    tr.add_argument("--batch-residues", type=int, default=65536)
    tr.add_argument("--max-unlabelled", type=int, default=0)
    tr.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    tr.add_argument("--scratch", default="")
    tr.add_argument("--tar-to", default="", help="also write ARCH.tar.gz of the models into this folder")
    tr.add_argument("--deadline", type=float, default=0.0, help="start no new architecture after this many s")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--pairs", action="store_true", help="fine-tune only models that leave out two folds "
                    "(ARCH-VARIANT-eE-foldI-M, one per pair of folds), for nested stacking "
                    "(benchmarks/function_stack.py --nested)")
    tr.add_argument("--name", default="", help="name the models NAME-... instead of ARCH-... (one --archs)")
    tr.add_argument("--no-amp", action="store_true", help="train in float32 on a GPU too (no bfloat16 autocast)")
    tr.add_argument("--init", default="", help="a model folder (from this pack) whose weights start distillation")
    tr.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override CNN parameters of every architecture (e.g. channels=8 layers=2 for a trial)")
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        return make_pack(args)
    if not Path(args.pack).is_file():
        raise InputError(f"{args.pack}: no such file (make it with the 'pack' step)")
    return train(args)


if __name__ == "__main__":
    sys.exit(run_main(main, "fold_recipe.py"))
