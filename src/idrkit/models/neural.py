"""Neural sequence taggers: a dilated residual CNN, a BiLSTM and a small transformer encoder.

Training needs the ``[train]`` extra (PyTorch). Inputs are per-residue hand-made features
(:class:`idrkit.features.FeatureSpec`: one-hot, scales and window compositions), standardised with the
training data's mean and spread. Outputs are one logit per residue and track (``pdb``, ``nox``, and
``teacher`` when distilling). Training: masked binary cross-entropy (unknown labels ignored, soft teacher
labels allowed), class weighting, AdamW with warm-up and cosine decay, early stopping on held-out AUC
(:mod:`idrkit.models.trainer`), a fixed seed and checkpoints.

The torch modules are in :mod:`idrkit.models.torch_modules`; the CNN and the BiLSTM predict without torch
(:mod:`idrkit.models.cnn_numpy`, :mod:`idrkit.models.lstm_numpy`), which is how the shipped models predict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError, require
from ..features.encoders import FeatureSpec, featurize, featurize_many
from ..metrics import pooled_metrics
from ..records import Record
from ._runtime import amp_dtype, progress_bar, select_device
from .base import Estimator, Params, run_setting
from .cnn_numpy import packed_probabilities, parallel_chunks
from .trainer import Stage, Trainer, head_bce, step_batches

HEAD_ORDER = ("pdb", "nox", "binding", "linker", "plddt", "teacher")
SOFT_HEADS = ("plddt", "teacher")  # learnt from a teacher's scores: no class weights, no held-out AUC


def balanced_pos_weight(labels: np.ndarray) -> float:
    """Weight of positive hard labels: sqrt(negatives / positives), a milder weighting than the ratio."""
    return float(np.sqrt((labels == 0).sum() / max(int((labels == 1).sum()), 1)))


def neural_feature_spec() -> FeatureSpec:
    """The input features of every neural family."""
    return FeatureSpec(composition_windows=[15, 41, 121], scale_windows=[1, 15, 41],
                       entropy_windows=[15, 41], charge_windows=[15, 41], one_hot=True, position=True)


@dataclass
class NeuralParams(Params):
    channels: int = 48
    layers: int = 8
    kernel: int = 5
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    dropout: float = 0.1
    context: bool = False  # CNN: add the protein's mean hidden state after every cycle of dilations
    recurrent: int = 0  # CNN: add a BiLSTM over means of chunks of this many residues before the head (0: none)
    recurrent_mid: bool = False  # recurrent CNN: also add such a chunk context after the middle layer
    lr: float = 2e-3
    weight_decay: float = 1e-2
    epochs: int = 10
    pretrain_epochs: int = 0
    patience: int = 3
    batch_residues: int = 16384
    crop: int = 1024
    pos_weight: float | str = "balanced"
    teacher_weight: float = 1.0
    heads: int = 4
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"
    grad_accum: int = 1
    max_steps_per_epoch: int = 0
    checkpoint_dir: str = run_setting("")
    init_from: str = run_setting("")  # a trained model folder of the same family whose weights start training
    progress: bool = run_setting(True)

    def check(self, where: str) -> None:
        """Refuse sizes no network can have (e.g. from a hand-edited ``model.json``)."""
        ints = {"channels": self.channels, "layers": self.layers, "kernel": self.kernel, "heads": self.heads}
        for name, value in ints.items():
            if value < 1:
                raise ModelError(f"{where}: field 'params.{name}' must be at least 1, not {value}")
        if not isinstance(self.recurrent, int) or isinstance(self.recurrent, bool) or self.recurrent < 0:
            raise ModelError(f"{where}: field 'params.recurrent' must be a whole number >= 0, not {self.recurrent!r}")
        if not isinstance(self.recurrent_mid, bool) or (self.recurrent_mid and not self.recurrent):
            raise ModelError(f"{where}: field 'params.recurrent_mid' must be true or false, and true only with "
                             f"'params.recurrent' above 0, not {self.recurrent_mid!r}")
        if not self.dilations or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                                         for d in self.dilations):
            raise ModelError(f"{where}: field 'params.dilations' must be a non-empty list of whole numbers >= 1")


class NeuralTagger(Estimator):
    """Shared training and prediction of the neural families; subclasses name the architecture."""

    params_class = NeuralParams
    arch = ""
    window = 0  # 0 = whole sequence; transformers predict long sequences in overlapping windows

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self.heads: list[str] = []
        self._module = None

    def default_spec(self) -> FeatureSpec:
        return neural_feature_spec()

    # ------------------------------------------------------------------ features and modules
    def _inputs(self, seq: str) -> np.ndarray:
        x = featurize(seq, self.spec)
        return (x - self.arrays["feature_mean"]) / self.arrays["feature_std"]

    def build(self, n_features: int, n_heads: int):
        require("torch", "train")
        from .torch_modules import build_module

        return build_module(self.arch, self.params, n_features, n_heads)

    def _torch_module(self):
        torch = require("torch", "train")
        if self._module is None:
            module = self.build(self.arrays["feature_mean"].size, len(self.meta["heads"]))
            module.load_state_dict({k[len("w."):]: torch.from_numpy(np.array(v)) for k, v in self.arrays.items()
                                    if k.startswith("w.")})
            module.eval()
            self._module = module
        return self._module

    def _after_load(self) -> None:
        self.heads = list(self.meta.get("heads", []))
        self._module = None
        self._f32 = None

    _f32 = None  # float32 copies of the weights for numpy prediction, made at the first one

    def _float32_arrays(self) -> dict[str, np.ndarray]:
        if self._f32 is None:
            self._f32 = {k: v.astype(np.float32) for k, v in self.arrays.items() if v.dtype.kind == "f"}
        return self._f32

    def _head_index(self, track: str) -> int:
        if track in self.heads:
            return self.heads.index(track)
        if "teacher" in self.heads and track in ("pdb", "nox"):  # a distilled student's teacher head
            return self.heads.index("teacher")
        raise ModelError(f"no '{track}' output in this model")

    def _predict(self, sequences, track):
        return self._predict_index(sequences, self._head_index(track))

    def _predict_index(self, sequences, idx: int) -> list[np.ndarray]:
        out = []
        for seqs in _length_batches(sequences, self.params.batch_residues, self.window):
            x, mask = pad_batch([self._inputs(s) for s in seqs])
            probs = 1 / (1 + np.exp(-self._batch_logits(x, mask)[..., idx]))
            out += [probs[i, :len(s)] for i, s in enumerate(seqs)]
        # batches follow increasing length; put the results back in input order
        restored = [None] * len(sequences)
        for pos, arr in zip(_length_order(sequences), out):
            restored[pos] = arr
        return restored

    def _batch_logits(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Logits (B, L, heads) of a padded batch, by the torch module."""
        torch = require("torch", "train")
        with torch.no_grad():
            return _windowed(self._torch_module(), torch, x, mask, self.window)

    # ------------------------------------------------------------------ training
    def fit(self, records: Sequence[Record], valid: Sequence[Record] | None = None) -> "NeuralTagger":
        torch = require("torch", "train")
        p = self.params
        torch.manual_seed(p.seed)
        rng = np.random.default_rng(p.seed)
        records = [r for r in records if r.labels is not None]
        if not records:
            raise ModelError("no labelled records to train on")
        heads = [h for h in HEAD_ORDER if any(r.track == h for r in records)]
        self.heads = heads
        self.tracks = tuple(h for h in heads if h != "teacher")
        if heads == ["teacher"]:  # a distilled-only student serves both disorder tracks with its teacher head
            self.tracks = ("pdb", "nox")
        self.meta["heads"] = heads
        self._standardise(records, rng)
        device = select_device(torch, p.device)
        module = self.build(self.arrays["feature_mean"].size, len(heads))
        if p.init_from:
            self._warm_start(torch, module, heads)
        module = self._module = module.to(device)
        opt = torch.optim.AdamW(module.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        stages = [Stage("pretrain", p.pretrain_epochs)] if p.pretrain_epochs and "teacher" in heads else []
        stages.append(Stage("train", p.epochs, reset_best=bool(stages) and any(h != "teacher" for h in heads)))
        total_steps = max(1, sum(s.epochs for s in stages) * math.ceil(self._steps_per_epoch(records) / p.grad_accum))
        warm = max(1, total_steps // 20)
        # linear warm-up, then cosine decay to 5% of the peak rate
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm) * (
            0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total_steps)))))
        loss_of = _BatchLoss(self, torch, module, heads, self._pos_weights(records, heads), device,
                             amp_dtype(torch, device, p.precision))

        def train_epoch(stage: Stage, desc: str) -> float:
            use_heads = ["teacher"] if stage.name == "pretrain" else heads
            loss_of.weights = {h: (p.teacher_weight if h == "teacher" and stage.name == "train" else 1.0)
                               for h in use_heads}
            use = [r for r in records if loss_of.weights.get(r.track, 0) > 0]
            batches = self._batches(use, rng)
            module.train()
            loss = step_batches(batches, lambda b: loss_of(b, rng), opt, p.grad_accum, list(module.parameters()),
                                sched, progress_bar(len(batches), desc, p.progress, leave=False, mininterval=5))
            module.eval()
            return loss

        def checkpoint() -> None:
            self._store(module)
            self.save(Path(p.checkpoint_dir))

        trainer = Trainer(self.family, p.patience, p.progress, checkpoint if p.checkpoint_dir else None)
        self.meta["history"] = trainer.run(
            stages, train_epoch, lambda stage: self._valid_score(valid, stage.name == "pretrain"),
            lambda: {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, module.load_state_dict)
        module.to("cpu").eval()
        self._store(module)
        return self

    def _standardise(self, records, rng) -> None:
        """Feature means and spreads from a sample of the training sequences."""
        sample = [records[i] for i in rng.choice(len(records), min(len(records), 500), replace=False)]
        feats = np.concatenate([featurize(r.sequence, self.spec) for r in sample])
        std = feats.std(axis=0)
        self.arrays = {"feature_mean": feats.mean(axis=0).astype(np.float32),
                       "feature_std": np.where(std > 1e-6, std, 1.0).astype(np.float32)}

    def _batches(self, records, rng) -> list[list[Record]]:
        p = self.params
        batches, batch, size = [], [], 0
        for i in rng.permutation(len(records)):
            batch.append(records[i])
            size += min(len(records[i]), p.crop)
            if size >= p.batch_residues:
                batches.append(batch)
                batch, size = [], 0
        if batch:
            batches.append(batch)
        return batches[:p.max_steps_per_epoch] if p.max_steps_per_epoch else batches

    def _warm_start(self, torch, module, heads) -> None:
        """Copy weights (and feature scaling) from a trained model; heads are matched by name.

        Output heads the source lacks start from its ``teacher`` head when it has one, so a student
        distilled without labels is fine-tuned from its own disorder scores rather than from noise.
        """
        from . import load_model

        src = load_model(self.params.init_from)
        if src.family != self.family:
            raise ModelError(f"init_from: a '{src.family}' model cannot start a '{self.family}' model")
        if src.spec != self.spec:
            raise ModelError("init_from: the model was trained on other features")
        self.arrays["feature_mean"] = src.arrays["feature_mean"]
        self.arrays["feature_std"] = src.arrays["feature_std"]
        state = module.state_dict()
        src_heads = src.meta.get("heads", [])
        for key in state:
            w = src.arrays.get(f"w.{key}")
            if w is None:
                continue
            if key.startswith("out.") and list(src_heads) != list(heads):
                rows = [src_heads.index(h) if h in src_heads else
                        src_heads.index("teacher") if "teacher" in src_heads else None for h in heads]
                new = state[key].clone()
                for i, r in enumerate(rows):
                    if r is not None:
                        new[i] = torch.from_numpy(np.array(w[r]))
                state[key] = new
            elif tuple(w.shape) == tuple(state[key].shape):
                state[key] = torch.from_numpy(np.array(w))
            else:
                raise ModelError(f"init_from: weight '{key}' has shape {w.shape}, expected {tuple(state[key].shape)}")
        module.load_state_dict(state)

    def _store(self, module) -> None:
        for k, v in module.state_dict().items():
            self.arrays[f"w.{k}"] = v.detach().float().cpu().numpy()
        self._f32 = None

    def _steps_per_epoch(self, records) -> int:
        total = sum(min(len(r), self.params.crop) for r in records if r.track != "teacher"
                    or self.params.teacher_weight > 0 or self.params.pretrain_epochs)
        steps = max(1, math.ceil(total / self.params.batch_residues))
        return min(steps, self.params.max_steps_per_epoch) if self.params.max_steps_per_epoch else steps

    def _pos_weights(self, records, heads) -> np.ndarray:
        out = np.ones(len(heads), dtype=np.float32)
        if self.params.pos_weight == "balanced":
            for i, h in enumerate(heads):
                if h in SOFT_HEADS:
                    continue
                out[i] = balanced_pos_weight(np.concatenate([r.labels for r in records if r.track == h]))
        elif self.params.pos_weight not in (None, "none"):
            out[:] = float(self.params.pos_weight)
        return out

    def _valid_score(self, valid, teacher_stage: bool) -> float:
        """Mean held-out AUC over the labelled tracks (or the teacher head in pretraining)."""
        if not valid:
            return float("nan")
        self._store(self._module)
        aucs = []
        for h in self.heads:
            recs = [r for r in valid if r.track == h and r.labels is not None] if h not in SOFT_HEADS else []
            if recs:
                idx = self.heads.index("teacher" if teacher_stage else h)
                scores = self._predict_index([r.sequence for r in recs], idx)
                aucs.append(pooled_metrics([r.labels for r in recs], scores)["auc"])
        return float(np.nanmean(aucs)) if aucs else float("nan")


class _BatchLoss:
    """The masked, class-weighted loss of one training batch (random crops of long proteins)."""

    def __init__(self, tagger, torch, module, heads, pos_weight, device, amp):
        self.tagger, self.torch, self.module, self.heads = tagger, torch, module, heads
        self.pw = torch.tensor(pos_weight, device=device)
        self.device, self.amp = device, amp
        self.weights: dict[str, float] = {}

    def __call__(self, batch: list[Record], rng):
        torch, crop = self.torch, self.tagger.params.crop
        xs, ys = [], []
        for r in batch:
            x = self.tagger._inputs(r.sequence)
            y = np.full((len(r), len(self.heads)), np.nan, dtype=np.float32)
            lab = r.labels.astype(np.float32)
            lab[lab < 0] = np.nan
            y[:, self.heads.index(r.track)] = lab
            if len(r) > crop:
                s = int(rng.integers(0, len(r) - crop + 1))
                x, y = x[s:s + crop], y[s:s + crop]
            xs.append(x)
            ys.append(y)
        x, mask = pad_batch(xs)
        y, _ = pad_batch(ys, fill=np.nan)
        yt = torch.from_numpy(y).to(self.device)
        with torch.autocast(device_type=self.device.type, dtype=self.amp, enabled=self.amp is not None):
            logits = self.module(torch.from_numpy(x).to(self.device), torch.from_numpy(mask).to(self.device))
        w = torch.tensor([self.weights.get(h, 0.0) for h in self.heads], device=self.device)
        return head_bce(torch, logits, yt, w, self.pw)


def _length_order(sequences) -> list[int]:
    return sorted(range(len(sequences)), key=lambda i: len(sequences[i]))


def _length_batches(sequences, max_residues: int, window: int = 0):
    """Sequences sorted by length in batches of about ``max_residues`` padded residues.

    With ``window`` > 0, a sequence longer than the window is a batch of its own, so that its windows
    (and those of the shorter sequences) do not depend on what else is in the batch.
    """
    batch, longest = [], 0
    for i in _length_order(sequences):
        s = sequences[i]
        alone = bool(window) and len(s) > window
        if batch and (alone or max(longest, len(s)) * (len(batch) + 1) > max_residues):
            yield batch
            batch, longest = [], 0
        batch.append(s)
        longest = max(longest, len(s))
    if batch:
        yield batch


def shuffled_length_batches(lengths: np.ndarray, proteins: np.ndarray, max_residues: int, rng) -> list[np.ndarray]:
    """The indices ``proteins`` sorted by length (ties in random order), cut into batches of about
    ``max_residues`` padded residues, the batches shuffled."""
    order = proteins[np.argsort(lengths[proteins] + rng.random(proteins.size))]
    out, cur = [], []
    for p in order.tolist():
        if cur and (len(cur) + 1) * lengths[p] > max_residues:
            out.append(np.array(cur))
            cur = []
        cur.append(p)
    if cur:
        out.append(np.array(cur))
    rng.shuffle(out)
    return out


def pad_batch(arrays: list[np.ndarray], fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Arrays (length, columns) padded with ``fill`` into one (batch, longest, columns) array, and its mask."""
    n = max(a.shape[0] for a in arrays)
    out = np.full((len(arrays), n, arrays[0].shape[1]), fill, dtype=np.float32)
    mask = np.zeros((len(arrays), n), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0]] = a
        mask[i, :a.shape[0]] = 1
    return out, mask


def _windowed(module, torch, x, mask, window: int) -> np.ndarray:
    """Logits of a padded batch; with ``window`` > 0, long sequences run in overlapping windows."""
    device = next(module.parameters()).device

    def run(xs, ms):
        return module(torch.from_numpy(xs).to(device), torch.from_numpy(ms).to(device)).float().cpu().numpy()

    if not window or x.shape[1] <= window:
        return run(x, mask)
    step = window // 2
    acc, cnt = None, np.zeros(x.shape[:2], dtype=np.float32)
    starts = list(range(0, x.shape[1] - window, step)) + [x.shape[1] - window]
    # weight the middle of a window more than its edges, which see less context
    w = np.minimum(np.arange(1, window + 1), np.arange(window, 0, -1)).astype(np.float32)
    for s in starts:
        out = run(np.ascontiguousarray(x[:, s:s + window]), np.ascontiguousarray(mask[:, s:s + window]))
        if acc is None:
            acc = np.zeros(x.shape[:2] + (out.shape[2],), dtype=np.float32)
        acc[:, s:s + window] += out * w[None, :, None]
        cnt[:, s:s + window] += w[None, :]
    return acc / cnt[..., None]


class CNNTagger(NeuralTagger):
    """Dilated residual CNN (``cnn``); predicts with numpy only, no torch needed."""

    family = "cnn"
    arch = "cnn"

    def _predict_heads(self, sequences, heads: list[str]) -> list[dict[str, np.ndarray]]:
        """Probabilities of several output heads from one pass of the network, per sequence."""
        idxs = [self.heads.index(h) for h in heads]
        probs = self._predict_index(sequences, idxs)
        return [{h: p[:, j] for j, h in enumerate(heads)} for p in probs]

    def _predict_index(self, sequences, idx):
        weights = self._float32_arrays()

        def chunk(seqs):
            x = featurize_many(seqs, self.spec)
            x -= self.arrays["feature_mean"]
            x /= self.arrays["feature_std"]
            return packed_probabilities(weights, self.params, x, [len(q) for q in seqs], idx)

        return parallel_chunks(sequences, chunk)


class BiLSTMTagger(NeuralTagger):
    """Bidirectional LSTM (``bilstm``); predicts with numpy only (:mod:`idrkit.models.lstm_numpy`)."""

    family = "bilstm"
    arch = "bilstm"

    def __init__(self, params=None, **kwargs):
        kwargs.setdefault("channels", 64)
        kwargs.setdefault("layers", 8)
        super().__init__(params, **kwargs)

    def _batch_logits(self, x, mask):
        from .lstm_numpy import bilstm_logits

        return bilstm_logits(self._float32_arrays(), max(1, self.params.layers // 4), x,
                             mask.sum(axis=1).astype(np.int64))


class TransformerTagger(NeuralTagger):
    """Small transformer encoder trained from scratch (``transformer``, the seed's method 2)."""

    family = "transformer"
    arch = "transformer"
    window = 1024

    def __init__(self, params=None, **kwargs):
        kwargs.setdefault("channels", 64)
        kwargs.setdefault("layers", 8)
        super().__init__(params, **kwargs)
