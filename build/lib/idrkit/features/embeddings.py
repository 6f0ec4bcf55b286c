"""Per-residue embeddings of a protein language model (any ESM-style Hugging Face checkpoint), with a
disk cache for frozen backbones.

Residues are mapped to tokens one by one (special tokens added and stripped here, rare letters without a
token of their own mapped to the unknown token), so embeddings always line up with residues. Sequences
longer than the backbone's limit run in overlapping windows whose embeddings are merged, weighted towards
each window's centre.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..cache import ArrayCache
from ..errors import require


def centre_weights(n: int):
    """Weights 1, 2, ..., peak, ..., 2, 1 over a window of ``n`` (as a column vector): edges see less context."""
    torch = require("torch", "plm")
    return torch.minimum(torch.arange(1, n + 1), torch.arange(n, 0, -1)).float().unsqueeze(1)


def window_spans(n: int, window: int) -> list[tuple[int, int]]:
    """Overlapping windows (start, end) covering ``n`` residues, half a window apart; one if it fits."""
    if n <= window:
        return [(0, n)]
    step = window // 2
    return [(s, s + window) for s in list(range(0, n - window, step)) + [n - window]]


def backbone_fingerprint(model) -> str:
    """A short digest of a backbone's first weights, so that two models of one name never share a cache."""
    first = next(iter(model.state_dict().values()))
    return hashlib.sha1(first.detach().float().cpu().numpy().tobytes()[:65536]).hexdigest()[:10]


class ResidueEmbedder:
    """Embeds sequences residue by residue with a loaded backbone and its tokenizer."""

    def __init__(self, backbone, tokenizer, device, amp=None, batch_size: int = 8, window: int = 0):
        self.backbone, self.tokenizer, self.device, self.amp = backbone, tokenizer, device, amp
        self.batch_size = batch_size
        limit = int(getattr(backbone.config, "max_position_embeddings", 1026)) - 2
        # ESM reserves position slots for the special tokens; keep two more free for safety
        limit = max(8, limit - 2)
        self.window = min(window, limit) if window else limit

    def token_ids(self, seq: str) -> list[int]:
        vocab = self.tokenizer.get_vocab()
        unk = vocab.get("X", self.tokenizer.unk_token_id)
        return [vocab.get(c, unk) for c in seq]

    def _embed_batch(self, chunks: list[list[int]]):
        """Per-residue hidden states (list of tensors) for token-id chunks, special tokens stripped."""
        torch = require("torch", "plm")
        tok = self.tokenizer
        cls_id = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        eos_id = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        longest = max(len(c) for c in chunks) + 2
        ids = torch.full((len(chunks), longest), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros((len(chunks), longest), dtype=torch.long)
        for i, c in enumerate(chunks):
            row = [cls_id] + c + [eos_id]
            ids[i, :len(row)] = torch.tensor(row)
            att[i, :len(row)] = 1
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            out = self.backbone(input_ids=ids.to(self.device), attention_mask=att.to(self.device))
        hidden = out.last_hidden_state.float()
        return [hidden[i, 1:1 + len(c)] for i, c in enumerate(chunks)]

    def embed(self, seqs: Sequence[str], grad: bool = False) -> list:
        """Embeddings (L, H) of whole sequences as tensors, windows merged with centre-weighted averaging."""
        torch = require("torch", "plm")
        jobs = []  # (sequence index, start, end, token ids)
        for i, s in enumerate(seqs):
            ids = self.token_ids(s)
            jobs += [(i, a, b, ids[a:b]) for a, b in window_spans(len(s), self.window)]
        sums, weights = [None] * len(seqs), [None] * len(seqs)
        with torch.enable_grad() if grad else torch.no_grad():
            for k in range(0, len(jobs), self.batch_size):
                part = jobs[k:k + self.batch_size]
                for (i, a, b, _), h in zip(part, self._embed_batch([j[3] for j in part])):
                    n = len(seqs[i])
                    w = centre_weights(b - a).to(h.device) if b - a < n else torch.ones(b - a, 1, device=h.device)
                    pad = (0, 0, a, n - b)
                    term, wt = torch.nn.functional.pad(h * w, pad), torch.nn.functional.pad(w, pad)
                    sums[i] = term if sums[i] is None else sums[i] + term
                    weights[i] = wt if weights[i] is None else weights[i] + wt
        return [s / w for s, w in zip(sums, weights)]

    def cached(self, seqs: Sequence[str], name: str) -> list[np.ndarray]:
        """Frozen embeddings as float16 arrays, read from or added to the disk cache."""
        cache = ArrayCache(f"plm-{Path(name).name}-{backbone_fingerprint(self.backbone)}")

        def compute(part):
            return [e.cpu().numpy().astype(np.float16) for e in self.embed(part)]

        return cache.compute(list(seqs), compute, chunk=256)
