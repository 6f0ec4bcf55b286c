"""Neural sequence taggers: a dilated residual CNN, a BiLSTM and a small transformer encoder.

Training needs the ``[train]`` extra (PyTorch). Inputs are per-residue hand-made features
(:class:`idrkit.features.FeatureSpec`: one-hot, scales and window compositions), standardised with the
training data's mean and spread. Outputs are one logit per residue and track (``pdb``, ``nox``, and
``teacher`` when distilling). Training: masked binary cross-entropy (unknown labels ignored, soft teacher
labels allowed), class weighting, AdamW, early stopping on held-out AUC, a fixed seed and checkpoints.

The CNN runs without torch at prediction time (:func:`cnn_forward`, numpy only), which is how the
shipped default model predicts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError, require
from ..features.encoders import FeatureSpec, featurize
from ..metrics import pooled_metrics
from ..sequences import Record
from .base import Estimator, Params

HEAD_ORDER = ("pdb", "nox", "teacher")


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
    checkpoint_dir: str = ""
    init_from: str = ""  # a trained model folder of the same family whose weights start the training
    progress: bool = True


class NeuralTagger(Estimator):
    """Shared training and prediction of the neural families; subclasses build the torch module."""

    params_class = NeuralParams
    arch = ""

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self.spec = neural_feature_spec()
        self.heads: list[str] = []

    # ------------------------------------------------------------------ features
    def _inputs(self, seq: str) -> np.ndarray:
        x = featurize(seq, self.spec)
        return (x - self.arrays["feature_mean"]) / self.arrays["feature_std"]

    # ------------------------------------------------------------------ torch module
    def build(self, n_features: int, n_heads: int):
        torch = require("torch", "train")
        return _build_module(torch, self.arch, self.params, n_features, n_heads)

    def _torch_module(self):
        torch = require("torch", "train")
        if getattr(self, "_module", None) is None:
            heads = self.meta["heads"]
            module = self.build(self.arrays["feature_mean"].size, len(heads))
            state = {k[len("w."):]: torch.from_numpy(np.array(v)) for k, v in self.arrays.items()
                     if k.startswith("w.")}
            module.load_state_dict(state)
            module.eval()
            self._module = module
        return self._module

    def _after_load(self) -> None:
        self.heads = list(self.meta.get("heads", []))
        self._module = None

    def _head_index(self, track: str) -> int:
        if track in self.heads:
            return self.heads.index(track)
        if "teacher" in self.heads:  # a distilled-only model serves every track with its teacher head
            return self.heads.index("teacher")
        raise ModelError(f"no '{track}' output in this model")

    def _predict(self, sequences, track):
        return self._predict_index(sequences, self._head_index(track))

    def _predict_index(self, sequences, idx: int) -> list[np.ndarray]:
        torch = require("torch", "train")
        module = self._torch_module()
        out = []
        with torch.no_grad():
            for seqs in _length_batches(sequences, self.params.batch_residues):
                x, mask = _pad([self._inputs(s) for s in seqs])
                logits = _windowed(module, torch, x, mask, self.window)
                probs = 1 / (1 + np.exp(-logits[..., idx]))
                out += [probs[i, :len(s)] for i, s in enumerate(seqs)]
        # batches follow increasing length; put the results back in input order
        restored = [None] * len(sequences)
        for pos, arr in zip(_length_order(sequences), out):
            restored[pos] = arr
        return restored

    window = 0  # 0 = whole sequence; transformers predict long sequences in overlapping windows

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
        self.tracks = tuple(h for h in ("pdb", "nox") if h in heads) or ("pdb", "nox")
        self.meta["heads"] = heads
        # feature standardisation from a sample of the training sequences
        sample = [records[i] for i in rng.choice(len(records), min(len(records), 500), replace=False)]
        feats = np.concatenate([featurize(r.sequence, self.spec) for r in sample])
        std = feats.std(axis=0)
        self.arrays = {"feature_mean": feats.mean(axis=0).astype(np.float32),
                       "feature_std": np.where(std > 1e-6, std, 1.0).astype(np.float32)}
        device = _device(torch, p.device)
        module = self.build(feats.shape[1], len(heads))
        if p.init_from:
            self._warm_start(torch, module, heads)
        module = module.to(device)
        self._module = module
        pos_weight = self._pos_weights(records, heads)
        opt = torch.optim.AdamW(module.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        amp_dtype = _amp_dtype(torch, device, p.precision)
        labelled_tracks = [h for h in heads if h != "teacher"]
        best, best_state, bad_epochs, history = -np.inf, None, 0, []
        stages = [("pretrain", p.pretrain_epochs, ["teacher"])] if p.pretrain_epochs and "teacher" in heads else []
        stages.append(("train", p.epochs, heads))
        total_epochs = sum(s[1] for s in stages)
        total_steps = max(1, total_epochs * math.ceil(self._steps_per_epoch(records) / p.grad_accum))
        warm = max(1, total_steps // 20)
        # linear warm-up, then cosine decay to 5% of the peak rate
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm) * (
            0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total_steps)))))
        epoch_no = 0
        for stage, n_epochs, use_heads in stages:
            weights = {h: (p.teacher_weight if h == "teacher" and stage == "train" else 1.0) for h in use_heads}
            use = [r for r in records if weights.get(r.track, 0) > 0]
            if stage == "train" and stages[0][0] == "pretrain" and labelled_tracks:
                best, best_state, bad_epochs = -np.inf, None, 0
            for _ in range(n_epochs):
                epoch_no += 1
                t0 = time.time()
                loss = self._epoch(torch, module, opt, sched, use, heads, weights, pos_weight, device, amp_dtype,
                                   rng, f"{stage} epoch {epoch_no}/{total_epochs}")
                score = self._valid_score(valid, stage == "pretrain")
                history.append({"stage": stage, "epoch": epoch_no, "loss": loss, "valid_auc": score,
                                "seconds": round(time.time() - t0, 1)})
                if p.progress:
                    print(f"[{self.family}] {stage} epoch {epoch_no}: loss {loss:.4f} held-out AUC "
                          f"{score:.4f} ({time.time() - t0:.0f} s)", flush=True)
                if p.checkpoint_dir:
                    self._store(module)
                    self.save(Path(p.checkpoint_dir))
                if score > best or not np.isfinite(score):
                    best, bad_epochs = score, 0
                    best_state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
                else:
                    bad_epochs += 1
                    if bad_epochs >= p.patience:
                        break
        if best_state is not None:
            module.load_state_dict(best_state)
        module.to("cpu").eval()
        self._store(module)
        self.meta["history"] = history
        return self

    def _warm_start(self, torch, module, heads) -> None:
        """Copy weights (and feature scaling) from a trained model; heads are matched by name.

        Output heads the source lacks start from its ``teacher`` head when it has one, so a student
        distilled without labels is fine-tuned from its own disorder scores rather than from noise.
        """
        from . import load_model

        src = load_model(self.params.init_from)
        if src.family != self.family:
            raise ModelError(f"init_from: a '{src.family}' model cannot start a '{self.family}' model")
        self.arrays["feature_mean"] = src.arrays["feature_mean"]
        self.arrays["feature_std"] = src.arrays["feature_std"]
        state = module.state_dict()
        src_heads = src.meta.get("heads", [])
        for key in state:
            w = src.arrays.get(f"w.{key}")
            if w is None:
                continue
            if key.startswith("out.") and list(src_heads) != list(heads):
                # a head the source lacks starts from the source's teacher head (distilled, then fine-tuned)
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

    def _steps_per_epoch(self, records) -> int:
        total = sum(min(len(r), self.params.crop) for r in records if r.track != "teacher"
                    or self.params.teacher_weight > 0 or self.params.pretrain_epochs)
        steps = max(1, math.ceil(total / self.params.batch_residues))
        return min(steps, self.params.max_steps_per_epoch) if self.params.max_steps_per_epoch else steps

    def _pos_weights(self, records, heads) -> np.ndarray:
        out = np.ones(len(heads), dtype=np.float32)
        if self.params.pos_weight == "balanced":
            for i, h in enumerate(heads):
                if h == "teacher":
                    continue
                lab = np.concatenate([r.labels for r in records if r.track == h])
                pos, neg = (lab == 1).sum(), (lab == 0).sum()
                out[i] = float(np.sqrt(neg / max(pos, 1)))  # square root: a milder weighting than neg/pos
        elif self.params.pos_weight not in (None, "none"):
            out[:] = float(self.params.pos_weight)
        return out

    def _epoch(self, torch, module, opt, sched, records, heads, weights, pos_weight, device, amp_dtype, rng,
               desc) -> float:
        p = self.params
        module.train()
        order = rng.permutation(len(records))
        batches, batch, size = [], [], 0
        for i in order:
            batch.append(records[i])
            size += min(len(records[i]), p.crop)
            if size >= p.batch_residues:
                batches.append(batch)
                batch, size = [], 0
        if batch:
            batches.append(batch)
        if p.max_steps_per_epoch:
            batches = batches[:p.max_steps_per_epoch]
        bar = _progress(len(batches), desc, p.progress)
        losses = []
        pw = torch.tensor(pos_weight, device=device)
        for step, batch in enumerate(batches):
            xs, ys = [], []
            for r in batch:
                x = self._inputs(r.sequence)
                y = np.full((len(r), len(heads)), np.nan, dtype=np.float32)
                lab = r.labels.astype(np.float32)
                lab[lab < 0] = np.nan
                y[:, heads.index(r.track)] = lab
                if len(r) > p.crop:
                    s = int(rng.integers(0, len(r) - p.crop + 1))
                    x, y = x[s:s + p.crop], y[s:s + p.crop]
                xs.append(x)
                ys.append(y)
            x, mask = _pad(xs)
            y, _ = _pad(ys, fill=np.nan)
            xt = torch.from_numpy(x).to(device)
            mt = torch.from_numpy(mask).to(device)
            yt = torch.from_numpy(y).to(device)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = module(xt, mt)
            logits = logits.float()
            known = ~torch.isnan(yt)
            target = torch.nan_to_num(yt)
            w = torch.tensor([weights.get(h, 0.0) for h in heads], device=device)
            # class weight applies to hard labels only (teacher soft labels keep weight 1)
            cls_w = torch.where(target > 0.5, pw.expand_as(target), torch.ones_like(target))
            bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
            wt = known * w * cls_w
            loss = (bce * wt).sum() / wt.sum().clamp_min(1.0)
            (loss / p.grad_accum).backward()
            if (step + 1) % p.grad_accum == 0 or step + 1 == len(batches):
                torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                opt.step()
                opt.zero_grad()
                sched.step()
            losses.append(float(loss.detach()))
            bar.update(1)
        bar.close()
        module.eval()
        return float(np.mean(losses)) if losses else float("nan")

    def _valid_score(self, valid, teacher_stage: bool) -> float:
        """Mean held-out AUC over the labelled tracks (or the teacher head in pretraining)."""
        if not valid:
            return float("nan")
        self._store(self._module)
        aucs = []
        for h in self.heads:
            if h == "teacher":
                continue
            recs = [r for r in valid if r.track == h and r.labels is not None]
            if not recs:
                continue
            idx = self.heads.index("teacher" if teacher_stage else h)
            scores = self._predict_index([r.sequence for r in recs], idx)
            aucs.append(pooled_metrics([r.labels for r in recs], scores)["auc"])
        return float(np.nanmean(aucs)) if aucs else float("nan")


def _length_order(sequences) -> list[int]:
    return sorted(range(len(sequences)), key=lambda i: len(sequences[i]))


def _length_batches(sequences, max_residues: int):
    """Sequences sorted by length in batches of about ``max_residues`` padded residues."""
    batch, longest = [], 0
    for i in _length_order(sequences):
        s = sequences[i]
        if batch and max(longest, len(s)) * (len(batch) + 1) > max_residues:
            yield batch
            batch, longest = [], 0
        batch.append(s)
        longest = max(longest, len(s))
    if batch:
        yield batch


def _pad(arrays: list[np.ndarray], fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
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
    for s in starts:
        out = run(np.ascontiguousarray(x[:, s:s + window]), np.ascontiguousarray(mask[:, s:s + window]))
        if acc is None:
            acc = np.zeros(x.shape[:2] + (out.shape[2],), dtype=np.float32)
        # weight the middle of a window more than its edges, which see less context
        w = np.minimum(np.arange(1, window + 1), np.arange(window, 0, -1)).astype(np.float32)
        acc[:, s:s + window] += out * w[None, :, None]
        cnt[:, s:s + window] += w[None, :]
    return acc / cnt[..., None]


def _device(torch, name: str):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device '{name}' was asked for but no CUDA GPU is available")
    return torch.device(name)


def _amp_dtype(torch, device, precision: str):
    """bf16 (or fp16 when asked) autocast on a GPU; full precision on the CPU."""
    if device.type != "cuda" or precision in ("fp32", "32"):
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class _NullBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NullBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NullBar()
    return tqdm(total=total, desc=desc, unit="batch", leave=False, mininterval=5)


# ---------------------------------------------------------------------------------------- torch modules


def _build_module(torch, arch: str, p: NeuralParams, n_features: int, n_heads: int):
    nn = torch.nn

    class CNN(nn.Module):
        """Input projection, residual blocks of LayerNorm -> ReLU -> dilated conv, a linear head."""

        def __init__(self):
            super().__init__()
            c = p.channels
            self.inp = nn.Linear(n_features, c)
            self.norms = nn.ModuleList([nn.LayerNorm(c) for _ in range(p.layers)])
            self.convs = nn.ModuleList([
                nn.Conv1d(c, c, p.kernel, dilation=p.dilations[i % len(p.dilations)],
                          padding=p.dilations[i % len(p.dilations)] * (p.kernel // 2))
                for i in range(p.layers)])
            self.drop = nn.Dropout(p.dropout)
            self.out_norm = nn.LayerNorm(c)
            self.out = nn.Linear(c, n_heads)
            n_ctx = len(_context_layers(p))
            self.ctx_norms = nn.ModuleList([nn.LayerNorm(c) for _ in range(n_ctx)])
            self.ctxs = nn.ModuleList([nn.Linear(c, c) for _ in range(n_ctx)])
            self.after = _context_layers(p)
            for lin in self.ctxs:  # start as the plain CNN (also when warm-started from one)
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

        def forward(self, x, mask):
            m = mask.unsqueeze(-1)
            h = self.inp(x) * m
            for i, (norm, conv) in enumerate(zip(self.norms, self.convs)):
                z = torch.relu(norm(h)) * m
                z = conv(self.drop(z).transpose(1, 2)).transpose(1, 2)
                h = h + z * m
                if i in self.after:
                    j = self.after.index(i)
                    g = (self.ctx_norms[j](h) * m).sum(1) / m.sum(1).clamp_min(1.0)
                    h = h + self.ctxs[j](g).unsqueeze(1) * m
            return self.out(torch.relu(self.out_norm(h)))

    class BiLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            c = p.channels
            self.inp = nn.Linear(n_features, c)
            self.lstm = nn.LSTM(c, c, num_layers=max(1, p.layers // 4), batch_first=True, bidirectional=True,
                                dropout=p.dropout if p.layers // 4 > 1 else 0.0)
            self.out = nn.Linear(2 * c, n_heads)

        def forward(self, x, mask):
            lengths = mask.sum(1).long().cpu()
            h = torch.relu(self.inp(x))
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            return self.out(out)

    class Block(nn.Module):
        """Pre-norm encoder block; attention through scaled_dot_product_attention (fused kernels)."""

        def __init__(self, c):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(c), nn.LayerNorm(c)
            self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
            self.ff = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))
            self.drop = nn.Dropout(p.dropout)

        def forward(self, h, attend):
            b, n, c = h.shape
            q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, p.heads, c // p.heads).permute(2, 0, 3, 1, 4)
            a = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attend)
            h = h + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, c)))
            return h + self.drop(self.ff(self.norm2(h)))

    class Transformer(nn.Module):
        """The seed's method 2 trained from scratch: encoder + dense + sigmoid, sinusoidal positions."""

        def __init__(self):
            super().__init__()
            c = p.channels
            self.inp = nn.Linear(n_features, c)
            self.blocks = nn.ModuleList([Block(c) for _ in range(max(1, p.layers // 2))])
            self.out = nn.Linear(c, n_heads)

        def forward(self, x, mask):
            n = x.shape[1]
            pos = torch.arange(n, device=x.device, dtype=torch.float32).unsqueeze(1)
            div = torch.exp(torch.arange(0, p.channels, 2, device=x.device, dtype=torch.float32)
                            * (-math.log(10000.0) / p.channels))
            pe = torch.zeros(n, p.channels, device=x.device)
            pe[:, 0::2] = torch.sin(pos * div)
            pe[:, 1::2] = torch.cos(pos * div)
            h = self.inp(x) + pe
            attend = (mask > 0)[:, None, None, :]
            for block in self.blocks:
                h = block(h, attend)
            return self.out(h)

    classes = {"cnn": CNN, "bilstm": BiLSTM, "transformer": Transformer}
    return classes[arch]()


# ------------------------------------------------------------------------------ numpy inference for the CNN


def _layer_norm(x, w, b, eps=1e-5):
    """LayerNorm over the last axis; the means come from matrix products, which BLAS runs fastest."""
    ones = np.full((x.shape[1], 1), 1.0 / x.shape[1], dtype=x.dtype)
    mu = x @ ones
    centred = x - mu
    var = (centred * centred) @ ones
    return centred * (1.0 / np.sqrt(var + eps)) * w + b


def _context_layers(p: NeuralParams) -> list[int]:
    """The CNN layers after which the protein's mean hidden state is added (``context`` models)."""
    if not p.context:
        return []
    cycle = len(p.dilations)
    return sorted({min(i + cycle - 1, p.layers - 1) for i in range(0, p.layers, cycle)})


def cnn_forward(arrays: dict[str, np.ndarray], params: NeuralParams, x: np.ndarray, mask: np.ndarray,
                spans: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Logits (N, heads) of the CNN for a packed input ``x`` (N, F); ``mask`` is 0 on separator rows.

    Many sequences are packed into one array with zero rows between them, at least as wide as the
    largest dilated half-kernel, so that every layer runs as a few large matrix products. ``spans``
    (start, end) of each sequence are needed by ``context`` models, which add a per-protein mean.
    """
    after = _context_layers(params)
    if after and spans is None:
        raise ModelError("a context CNN needs the span of every packed sequence")
    m = mask[:, None]
    n = x.shape[0]
    h = (x @ arrays["w.inp.weight"].T + arrays["w.inp.bias"]) * m
    margin = max(params.dilations) * (params.kernel // 2)
    buf = np.zeros((n + 2 * margin, h.shape[1]), dtype=h.dtype)  # zero margins stand for the padding
    for i in range(params.layers):
        d = params.dilations[i % len(params.dilations)]
        z = _layer_norm(h, arrays[f"w.norms.{i}.weight"], arrays[f"w.norms.{i}.bias"])
        np.maximum(z, 0, out=z)
        z *= m
        buf[margin:margin + n] = z
        w = arrays[f"w.convs.{i}.weight"]  # (out, in, k)
        half = d * (params.kernel // 2)
        acc = buf[margin - half:margin - half + n] @ w[:, :, 0].T
        for j in range(1, params.kernel):
            start = margin - half + j * d
            acc += buf[start:start + n] @ w[:, :, j].T
        acc += arrays[f"w.convs.{i}.bias"]
        acc *= m
        h += acc
        if i in after:
            j = after.index(i)
            z = _layer_norm(h, arrays[f"w.ctx_norms.{j}.weight"], arrays[f"w.ctx_norms.{j}.bias"])
            w, b = arrays[f"w.ctxs.{j}.weight"], arrays[f"w.ctxs.{j}.bias"]
            for s, e in spans:
                h[s:e] += z[s:e].mean(axis=0) @ w.T + b
    z = np.maximum(_layer_norm(h, arrays["w.out_norm.weight"], arrays["w.out_norm.bias"]), 0)
    return z @ arrays["w.out.weight"].T + arrays["w.out.bias"]


class CNNTagger(NeuralTagger):
    """Dilated residual CNN (``cnn``); predicts with numpy only, no torch needed."""

    family = "cnn"
    arch = "cnn"

    def _predict_index(self, sequences, idx):
        p = self.params
        if not hasattr(self, "_f32"):
            self._f32 = {k: v.astype(np.float32) for k, v in self.arrays.items() if v.dtype.kind == "f"}
        chunks = [seqs for _, seqs in _chunks(sequences, 50_000)]
        threads = min(len(chunks), prediction_threads())
        if threads <= 1:
            parts = [self._predict_chunk(seqs, idx) for seqs in chunks]
        else:
            # chunks in parallel threads (numpy releases the GIL in its kernels), one BLAS thread each
            from concurrent.futures import ThreadPoolExecutor

            with _blas_threads(1), ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(lambda seqs: self._predict_chunk(seqs, idx), chunks))
        return [arr for part in parts for arr in part]

    def _predict_chunk(self, seqs, idx):
        p = self.params
        gap = max(p.dilations) * (p.kernel // 2)
        feats = [self._inputs(s) for s in seqs]
        n_total = sum(f.shape[0] for f in feats) + gap * (len(feats) + 1)
        x = np.zeros((n_total, feats[0].shape[1]), dtype=np.float32)
        mask = np.zeros(n_total, dtype=np.float32)
        offsets = []
        pos = gap
        for f in feats:
            x[pos:pos + f.shape[0]] = f
            mask[pos:pos + f.shape[0]] = 1
            offsets.append(pos)
            pos += f.shape[0] + gap
        spans = [(o, o + len(s)) for o, s in zip(offsets, seqs)]
        logits = cnn_forward(self._f32, p, x, mask, spans)[:, idx]
        probs = 1 / (1 + np.exp(-logits))
        return [probs[o:o + len(s)] for o, s in zip(offsets, seqs)]

    def _store(self, module) -> None:
        super()._store(module)
        if hasattr(self, "_f32"):
            del self._f32

    def _after_load(self) -> None:
        super()._after_load()
        if hasattr(self, "_f32"):
            del self._f32


def prediction_threads() -> int:
    """Threads for numpy inference: ``$IDRKIT_THREADS``, else the cores this process may use."""
    import os

    if os.environ.get("IDRKIT_THREADS"):
        return max(1, int(os.environ["IDRKIT_THREADS"]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _blas_threads(n: int):
    """A context limiting BLAS threads (threadpoolctl when installed, else a no-op)."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n)


def _chunks(sequences, max_residues):
    batch, size, start = [], 0, 0
    for i, s in enumerate(sequences):
        batch.append(s)
        size += len(s)
        if size >= max_residues:
            yield start, batch
            batch, size, start = [], 0, i + 1
    if batch:
        yield start, batch


class BiLSTMTagger(NeuralTagger):
    """Bidirectional LSTM (``bilstm``)."""

    family = "bilstm"
    arch = "bilstm"

    def __init__(self, params=None, **kwargs):
        kwargs.setdefault("channels", 64)
        kwargs.setdefault("layers", 8)
        super().__init__(params, **kwargs)


class TransformerTagger(NeuralTagger):
    """Small transformer encoder trained from scratch (``transformer``, the seed's method 2)."""

    family = "transformer"
    arch = "transformer"
    window = 1024

    def __init__(self, params=None, **kwargs):
        kwargs.setdefault("channels", 64)
        kwargs.setdefault("layers", 8)
        super().__init__(params, **kwargs)
