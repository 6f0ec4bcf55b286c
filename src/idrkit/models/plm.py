"""Protein language model tagger (``plm``; the ``[plm]`` extra: torch, transformers, peft).

Any Hugging Face ESM-style checkpoint (``--param backbone=facebook/esm2_t33_650M_UR50D`` or a local
folder) feeds a small per-residue head. Three modes:

``frozen``
    the backbone is not trained; its per-residue embeddings are cached on disk, keyed by backbone and
    sequence hash (:class:`idrkit.cache.ArrayCache`), and only the head learns.
``finetune``
    every weight learns; the tuned backbone is saved in the model folder (safetensors).
``lora``
    low-rank adapters (peft; the seed's r=8, alpha=32, dropout 0.1 by default) on ``target_modules``;
    only the adapters and the head learn and are saved.

Residues are mapped to tokens one by one (special tokens added and stripped here, rare letters without a
token of their own mapped to the unknown token), so scores always line up with residues. Sequences longer
than the backbone's limit run in overlapping windows whose scores are merged, weighted towards each
window's centre. Unknown labels are masked out of the loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..cache import ArrayCache
from ..errors import ModelError, require
from ..metrics import pooled_metrics
from ..sequences import Record
from .base import Estimator, Params
from .neural import _amp_dtype, _device


@dataclass
class PLMParams(Params):
    backbone: str = "facebook/esm2_t6_8M_UR50D"
    mode: str = "frozen"  # frozen | finetune | lora
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    window: int = 0  # residues per window; 0 = the backbone's limit
    hidden: int = 128
    epochs: int = 5
    lr: float = 1e-3
    backbone_lr: float = 5e-5
    batch_size: int = 8
    grad_accum: int = 1
    patience: int = 2
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 on GPU if supported, else fp16), fp16, bf16, fp32
    seed: int = 0
    progress: bool = True


class PLMTagger(Estimator):
    """Per-residue disorder from protein language model embeddings."""

    family = "plm"
    params_class = PLMParams

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self._backbone = None
        self._tokenizer = None
        self._head = None
        self._folder: Path | None = None

    # ------------------------------------------------------------------ backbone
    def _load_backbone(self, source: str | None = None):
        transformers = require("transformers", "plm")
        torch = require("torch", "plm")
        src = source or self.params.backbone
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(src)
        model = transformers.AutoModel.from_pretrained(src, add_pooling_layer=False) \
            if "esm" in str(getattr(transformers.AutoConfig.from_pretrained(src), "model_type", "")) \
            else transformers.AutoModel.from_pretrained(src)
        self._device = _device(torch, self.params.device)
        self._backbone = model.to(self._device)
        return model

    @property
    def window(self) -> int:
        limit = int(getattr(self._backbone.config, "max_position_embeddings", 1026)) - 2
        # ESM reserves position slots for the special tokens; keep two more free for safety
        limit = max(8, limit - 2)
        return min(self.params.window, limit) if self.params.window else limit

    def _token_ids(self, seq: str) -> list[int]:
        tok = self._tokenizer
        unk = tok.unk_token_id
        vocab = tok.get_vocab()
        ids = [vocab.get(c, vocab.get("X", unk)) for c in seq]
        return ids

    def _windows(self, n: int) -> list[tuple[int, int]]:
        w = self.window
        if n <= w:
            return [(0, n)]
        step = w // 2
        starts = list(range(0, n - w, step)) + [n - w]
        return [(s, s + w) for s in starts]

    def _embed_batch(self, chunks: list[list[int]]):
        """Per-residue hidden states (list of tensors) for token-id chunks, special tokens stripped."""
        torch = require("torch", "plm")
        tok = self._tokenizer
        cls_id = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        eos_id = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        longest = max(len(c) for c in chunks) + 2
        ids = torch.full((len(chunks), longest), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros((len(chunks), longest), dtype=torch.long)
        for i, c in enumerate(chunks):
            row = [cls_id] + c + [eos_id]
            ids[i, :len(row)] = torch.tensor(row)
            att[i, :len(row)] = 1
        with torch.autocast(self._device.type, dtype=self._amp, enabled=self._amp is not None):
            out = self._backbone(input_ids=ids.to(self._device), attention_mask=att.to(self._device))
        hidden = out.last_hidden_state.float()
        return [hidden[i, 1:1 + len(c)] for i, c in enumerate(chunks)]

    def _residue_embeddings(self, seqs: Sequence[str], grad: bool):
        """Embeddings (L, H) of whole sequences, windows merged with centre-weighted averaging."""
        torch = require("torch", "plm")
        jobs = []  # (sequence index, start, end, token ids)
        for i, s in enumerate(seqs):
            ids = self._token_ids(s)
            for a, b in self._windows(len(s)):
                jobs.append((i, a, b, ids[a:b]))
        outs = [None] * len(seqs)
        weights = [None] * len(seqs)
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx:
            for k in range(0, len(jobs), self.params.batch_size):
                part = jobs[k:k + self.params.batch_size]
                for (i, a, b, _), h in zip(part, self._embed_batch([j[3] for j in part])):
                    n = len(seqs[i])
                    if outs[i] is None:
                        outs[i] = torch.zeros(n, h.shape[1], device=h.device)
                        weights[i] = torch.zeros(n, 1, device=h.device)
                    w = torch.minimum(torch.arange(1, b - a + 1, device=h.device),
                                      torch.arange(b - a, 0, -1, device=h.device)).float().unsqueeze(1)
                    if len(self._windows(n)) == 1:
                        w = torch.ones_like(w)
                    outs[i] = outs[i] + torch.nn.functional.pad(h * w, (0, 0, a, n - b))
                    weights[i] = weights[i] + torch.nn.functional.pad(w, (0, 0, a, n - b))
        return [o / w for o, w in zip(outs, weights)]

    def _cache(self) -> ArrayCache:
        return ArrayCache(f"plm-{Path(self.params.backbone).name}-{_fingerprint(self._backbone)}")

    def _frozen_embeddings(self, seqs: Sequence[str]) -> list[np.ndarray]:
        def compute(part):
            return [e.cpu().numpy().astype(np.float16) for e in self._residue_embeddings(part, grad=False)]

        return self._cache().compute(list(seqs), compute, chunk=256)

    # ------------------------------------------------------------------ training
    def fit(self, records: Sequence[Record], valid: Sequence[Record] | None = None) -> "PLMTagger":
        torch = require("torch", "plm")
        p = self.params
        if p.mode not in ("frozen", "finetune", "lora"):
            raise ModelError(f"plm mode must be frozen, finetune or lora, not '{p.mode}'")
        torch.manual_seed(p.seed)
        rng = np.random.default_rng(p.seed)
        self._load_backbone()
        self._amp = _amp_dtype(torch, self._device, p.precision)
        records = [r for r in records if r.labels is not None]
        if not records:
            raise ModelError("no labelled records to train on")
        heads = [h for h in ("pdb", "nox") if any(r.track == h for r in records)]
        self.tracks = tuple(heads)
        self.meta["heads"] = heads
        if p.mode == "lora":
            peft = require("peft", "plm")
            cfg = peft.LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
                                  target_modules=list(p.target_modules), bias="none")
            self._backbone = peft.get_peft_model(self._backbone, cfg)
        if p.mode == "frozen":
            self._backbone.eval()
            for w in self._backbone.parameters():
                w.requires_grad_(False)
        dim = self._backbone.config.hidden_size
        self._head = _head(torch, dim, p.hidden, len(heads)).to(self._device)
        groups = [{"params": self._head.parameters(), "lr": p.lr}]
        trainable = [w for w in self._backbone.parameters() if w.requires_grad]
        if trainable:
            groups.append({"params": trainable, "lr": p.backbone_lr if p.mode == "finetune" else p.lr})
        opt = torch.optim.AdamW(groups, weight_decay=0.01)
        best, best_state, bad, history = -np.inf, None, 0, []
        for epoch in range(1, p.epochs + 1):
            t0 = time.time()
            order = rng.permutation(len(records))
            losses = []
            for step, k in enumerate(range(0, len(order), p.batch_size)):
                batch = [records[i] for i in order[k:k + p.batch_size]]
                loss = self._batch_loss(torch, batch, heads)
                (loss / p.grad_accum).backward()
                if (step + 1) % p.grad_accum == 0:
                    opt.step()
                    opt.zero_grad()
                losses.append(float(loss.detach()))
            opt.step()
            opt.zero_grad()
            score = self._valid_auc(valid, heads)
            history.append({"epoch": epoch, "loss": float(np.mean(losses)), "valid_auc": score,
                            "seconds": round(time.time() - t0, 1)})
            if p.progress:
                print(f"[plm/{p.mode}] epoch {epoch}: loss {np.mean(losses):.4f} held-out AUC {score:.4f}",
                      flush=True)
            if score > best or not np.isfinite(score):
                best, bad = score, 0
                best_state = self._snapshot()
            else:
                bad += 1
                if bad >= p.patience:
                    break
        if best_state is not None:
            self._restore(best_state)
        self.meta["history"] = history
        self._store_head()
        return self

    def _batch_loss(self, torch, batch, heads):
        seqs = [r.sequence for r in batch]
        if self.params.mode == "frozen":
            emb = [torch.from_numpy(e.astype(np.float32)).to(self._device) for e in self._frozen_embeddings(seqs)]
        else:
            self._backbone.train()
            emb = self._residue_embeddings(seqs, grad=True)
        x = torch.cat(emb)
        logits = self._head(x)
        y = np.concatenate([r.labels for r in batch]).astype(np.float32)
        col = np.concatenate([np.full(len(r), heads.index(r.track)) for r in batch])
        y_t = torch.from_numpy(y).to(self._device)
        known = y_t >= 0
        pick = logits[torch.arange(len(y)), torch.from_numpy(col).to(self._device)]
        bce = torch.nn.functional.binary_cross_entropy_with_logits(pick, y_t.clamp(0, 1), reduction="none")
        return (bce * known).sum() / known.sum().clamp_min(1)

    def _valid_auc(self, valid, heads) -> float:
        if not valid:
            return float("nan")
        aucs = []
        for h in heads:
            recs = [r for r in valid if r.track == h and r.labels is not None]
            if recs:
                scores = self._scores([r.sequence for r in recs], heads.index(h))
                aucs.append(pooled_metrics([r.labels for r in recs], scores)["auc"])
        return float(np.nanmean(aucs)) if aucs else float("nan")

    def _snapshot(self):
        state = {"head": {k: v.detach().cpu().clone() for k, v in self._head.state_dict().items()}}
        if self.params.mode != "frozen":
            state["backbone"] = {k: v.detach().cpu().clone() for k, v in self._backbone.state_dict().items()
                                 if self.params.mode == "finetune" or "lora_" in k}
        return state

    def _restore(self, state):
        self._head.load_state_dict(state["head"])
        if "backbone" in state:
            self._backbone.load_state_dict(state["backbone"], strict=False)

    def _store_head(self):
        for k, v in self._head.state_dict().items():
            self.arrays[f"head.{k}"] = v.detach().float().cpu().numpy()

    # ------------------------------------------------------------------ prediction
    def _scores(self, seqs, idx: int) -> list[np.ndarray]:
        torch = require("torch", "plm")
        self._backbone.eval()
        self._head.eval()
        out = []
        with torch.no_grad():
            for k in range(0, len(seqs), self.params.batch_size):
                part = seqs[k:k + self.params.batch_size]
                if self.params.mode == "frozen":
                    emb = [torch.from_numpy(e.astype(np.float32)).to(self._device)
                           for e in self._frozen_embeddings(part)]
                else:
                    emb = self._residue_embeddings(part, grad=False)
                for e in emb:
                    out.append(torch.sigmoid(self._head(e)[:, idx]).float().cpu().numpy())
        self._head.train()
        return out

    def _predict(self, sequences, track):
        heads = self.meta.get("heads", ["pdb"])
        if track not in heads:
            raise ModelError(f"no '{track}' output in this model")
        if self._backbone is None:
            self._restore_from_folder()
        return self._scores(list(sequences), heads.index(track))

    def save(self, folder):
        folder = Path(folder)
        self._store_head()
        super().save(folder)
        if self.params.mode == "lora":
            self._backbone.save_pretrained(folder / "adapter")
        elif self.params.mode == "finetune":
            self._backbone.save_pretrained(folder / "backbone", safe_serialization=True)
            self._tokenizer.save_pretrained(folder / "backbone")
        return folder

    def _restore_from_folder(self):
        torch = require("torch", "plm")
        p = self.params
        folder = self._folder
        if p.mode == "finetune":
            if folder is None or not (folder / "backbone").is_dir():
                raise ModelError("the fine-tuned backbone is missing from the model folder")
            self._load_backbone(str(folder / "backbone"))
        else:
            self._load_backbone()
        if p.mode == "lora":
            peft = require("peft", "plm")
            if folder is None or not (folder / "adapter").is_dir():
                raise ModelError("the LoRA adapter is missing from the model folder")
            self._backbone = peft.PeftModel.from_pretrained(self._backbone, str(folder / "adapter")).to(self._device)
        self._amp = _amp_dtype(torch, self._device, p.precision)
        dim = self._backbone.config.hidden_size
        self._head = _head(torch, dim, p.hidden, len(self.meta.get("heads", ["pdb"]))).to(self._device)
        state = {k[len("head."):]: torch.from_numpy(np.array(v)) for k, v in self.arrays.items()
                 if k.startswith("head.")}
        self._head.load_state_dict(state)


def _head(torch, dim, hidden, n_out):
    nn = torch.nn
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, n_out))


def _fingerprint(model) -> str:
    """A short digest of a backbone's first weights, so that two models of one name never share a cache."""
    import hashlib

    first = next(iter(model.state_dict().values()))
    return hashlib.sha1(first.detach().float().cpu().numpy().tobytes()[:65536]).hexdigest()[:10]
