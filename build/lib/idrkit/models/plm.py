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

Embeddings come from :class:`idrkit.features.embeddings.ResidueEmbedder` (residue-aligned, long sequences
in overlapping windows); backbones load through :mod:`idrkit.pretrained`. Unknown labels are masked out
of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError, require
from ..features.embeddings import ResidueEmbedder
from ..metrics import pooled_metrics
from ..pretrained import load_adapter, load_backbone
from ..records import Record
from ._runtime import amp_dtype, select_device
from .base import Estimator, Params, run_setting
from .trainer import Stage, Trainer, masked_bce, step_batches


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
    progress: bool = run_setting(True)


class PLMTagger(Estimator):
    """Per-residue disorder from protein language model embeddings."""

    family = "plm"
    params_class = PLMParams

    def __init__(self, params=None, **kwargs):
        super().__init__(params, **kwargs)
        self._embedder: ResidueEmbedder | None = None
        self._head = None

    def _load_backbone(self, source: str | None = None) -> None:
        torch = require("torch", "plm")
        tokenizer, model = load_backbone(source or self.params.backbone)
        device = select_device(torch, self.params.device)
        self._embedder = ResidueEmbedder(model.to(device), tokenizer, device,
                                         amp_dtype(torch, device, self.params.precision),
                                         self.params.batch_size, self.params.window)

    @property
    def window(self) -> int:
        return self._embedder.window

    def _embeddings(self, seqs: Sequence[str], grad: bool = False) -> list:
        torch = require("torch", "plm")
        emb = self._embedder
        if self.params.mode == "frozen":
            return [torch.from_numpy(e.astype(np.float32)).to(emb.device)
                    for e in emb.cached(seqs, self.params.backbone)]
        emb.backbone.train(grad)
        return emb.embed(seqs, grad=grad)

    # ------------------------------------------------------------------ training
    def fit(self, records: Sequence[Record], valid: Sequence[Record] | None = None) -> "PLMTagger":
        torch = require("torch", "plm")
        p = self.params
        if p.mode not in ("frozen", "finetune", "lora"):
            raise ModelError(f"plm mode must be frozen, finetune or lora, not '{p.mode}'")
        torch.manual_seed(p.seed)
        rng = np.random.default_rng(p.seed)
        self._load_backbone()
        records = [r for r in records if r.labels is not None]
        if not records:
            raise ModelError("no labelled records to train on")
        heads = [h for h in ("pdb", "nox") if any(r.track == h for r in records)]
        self.tracks = tuple(heads)
        self.meta["heads"] = heads
        emb = self._embedder
        if p.mode == "lora":
            peft = require("peft", "plm")
            cfg = peft.LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
                                  target_modules=list(p.target_modules), bias="none")
            emb.backbone = peft.get_peft_model(emb.backbone, cfg)
        if p.mode == "frozen":
            emb.backbone.eval()
            for w in emb.backbone.parameters():
                w.requires_grad_(False)
        self._head = _head(torch, emb.backbone.config.hidden_size, p.hidden, len(heads)).to(emb.device)
        groups = [{"params": self._head.parameters(), "lr": p.lr}]
        trainable = [w for w in emb.backbone.parameters() if w.requires_grad]
        if trainable:
            groups.append({"params": trainable, "lr": p.backbone_lr if p.mode == "finetune" else p.lr})
        opt = torch.optim.AdamW(groups, weight_decay=0.01)

        def train_epoch(stage: Stage, desc: str) -> float:
            order = rng.permutation(len(records))
            batches = [[records[i] for i in order[k:k + p.batch_size]] for k in range(0, len(order), p.batch_size)]
            self._head.train()
            return step_batches(batches, lambda b: self._batch_loss(torch, b, heads), opt, p.grad_accum)

        trainer = Trainer(f"plm/{p.mode}", p.patience, p.progress)
        self.meta["history"] = trainer.run([Stage("train", p.epochs)], train_epoch,
                                           lambda stage: self._valid_auc(valid, heads), self._snapshot, self._restore)
        self._store_head()
        return self

    def _batch_loss(self, torch, batch, heads):
        logits = self._head(torch.cat(self._embeddings([r.sequence for r in batch], grad=self.params.mode != "frozen")))
        device = self._embedder.device
        y = torch.from_numpy(np.concatenate([r.labels for r in batch]).astype(np.float32)).to(device)
        col = torch.from_numpy(np.concatenate([np.full(len(r), heads.index(r.track)) for r in batch])).to(device)
        pick = logits[torch.arange(len(y)), col]
        return masked_bce(torch, pick, y.clamp(0, 1), (y >= 0).float())

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
            state["backbone"] = {k: v.detach().cpu().clone() for k, v in self._embedder.backbone.state_dict().items()
                                 if self.params.mode == "finetune" or "lora_" in k}
        return state

    def _restore(self, state):
        self._head.load_state_dict(state["head"])
        if "backbone" in state:
            self._embedder.backbone.load_state_dict(state["backbone"], strict=False)

    def _store_head(self):
        for k, v in self._head.state_dict().items():
            self.arrays[f"head.{k}"] = v.detach().float().cpu().numpy()

    # ------------------------------------------------------------------ prediction
    def _scores(self, seqs, idx: int) -> list[np.ndarray]:
        torch = require("torch", "plm")
        self._head.eval()
        out = []
        with torch.no_grad():
            for k in range(0, len(seqs), self.params.batch_size):
                for e in self._embeddings(seqs[k:k + self.params.batch_size]):
                    out.append(torch.sigmoid(self._head(e)[:, idx]).float().cpu().numpy())
        return out

    def _predict(self, sequences, track):
        heads = self.meta.get("heads", ["pdb"])
        if track not in heads:
            raise ModelError(f"no '{track}' output in this model")
        if self._embedder is None:
            self._restore_from_folder()
        return self._scores(list(sequences), heads.index(track))

    def save(self, folder):
        folder = Path(folder)
        self._store_head()
        super().save(folder)
        if self.params.mode == "lora":
            self._embedder.backbone.save_pretrained(folder / "adapter")
        elif self.params.mode == "finetune":
            self._embedder.backbone.save_pretrained(folder / "backbone", safe_serialization=True)
            self._embedder.tokenizer.save_pretrained(folder / "backbone")
        return folder

    def _restore_from_folder(self):
        torch = require("torch", "plm")
        p, folder = self.params, self.folder
        part = {"finetune": "backbone", "lora": "adapter"}.get(p.mode)
        if part and (folder is None or not (folder / part).is_dir()):
            what = "fine-tuned backbone" if part == "backbone" else "LoRA adapter"
            raise ModelError(f"the {what} is missing from the model folder")
        self._load_backbone(str(folder / "backbone") if p.mode == "finetune" else None)
        emb = self._embedder
        if p.mode == "lora":
            emb.backbone = load_adapter(emb.backbone, str(folder / "adapter")).to(emb.device)
        self._head = _head(torch, emb.backbone.config.hidden_size, p.hidden, len(self.meta.get("heads", ["pdb"])))
        self._head.to(emb.device)
        self._head.load_state_dict({k[len("head."):]: torch.from_numpy(np.array(v)) for k, v in self.arrays.items()
                                    if k.startswith("head.")})


def _head(torch, dim, hidden, n_out):
    nn = torch.nn
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, n_out))
