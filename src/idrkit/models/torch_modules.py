"""The torch modules of the neural families (imported only where torch is needed: training, and
prediction by the transformer; the CNN and the BiLSTM predict with :mod:`idrkit.models.cnn_numpy` and
:mod:`idrkit.models.lstm_numpy`).

Every module maps a padded batch ``x`` (B, L, F) and its ``mask`` (B, L) to logits (B, L, heads).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .cnn_numpy import chunk_interpolation, context_layers, mid_layer


class CNN(nn.Module):
    """Input projection, residual blocks of LayerNorm -> ReLU -> dilated conv, a linear head.

    ``context`` models add, after every cycle of dilations, a projection of the protein's mean hidden state
    (zero-initialised, so that they start as the plain CNN, also when warm-started from one). ``recurrent``
    models (``recurrent`` = S residues) add, before the head, a bidirectional LSTM over the means of
    consecutive chunks of S residues, interpolated back to residues: context from the whole protein at 1/S
    of the cost of a recurrence over residues (its output projection is zero-initialised too). With
    ``recurrent_mid``, a second such chunk context is added after the middle layer, so that the layers
    after it combine the whole protein's context with the local one.
    """

    def __init__(self, p, n_features: int, n_heads: int):
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
        self.after = context_layers(p)
        self.ctx_norms = nn.ModuleList([nn.LayerNorm(c) for _ in self.after])
        self.ctxs = nn.ModuleList([nn.Linear(c, c) for _ in self.after])
        for lin in self.ctxs:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.chunk = int(getattr(p, "recurrent", 0) or 0)
        self.mid = mid_layer(p)
        for prefix in (["rec"] if self.chunk else []) + (["rec_mid"] if self.mid is not None else []):
            setattr(self, f"{prefix}_norm", nn.LayerNorm(c))
            setattr(self, prefix, nn.LSTM(c, c, batch_first=True, bidirectional=True))
            setattr(self, f"{prefix}_out", nn.Linear(2 * c, c))
            nn.init.zeros_(getattr(self, f"{prefix}_out").weight)
            nn.init.zeros_(getattr(self, f"{prefix}_out").bias)

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
            if i == self.mid:
                h = h + self._chunk_context(h, mask, "rec_mid") * m
        if self.chunk:
            h = h + self._chunk_context(h, mask) * m
        return self.out(torch.relu(self.out_norm(h)))

    def _chunk_context(self, h, mask, prefix: str = "rec"):
        b, n, c = h.shape
        s = self.chunk
        k = -(-n // s)
        g = nn.functional.pad(getattr(self, f"{prefix}_norm")(h) * mask.unsqueeze(-1), (0, 0, 0, k * s - n))
        cnt = nn.functional.pad(mask, (0, k * s - n)).view(b, k, s).sum(2)
        pooled = g.view(b, k, s, c).sum(2) / cnt.clamp_min(1.0).unsqueeze(-1)
        n_chunks = (cnt > 0).sum(1)
        out = _lstm_fp32(getattr(self, prefix), pooled, n_chunks.cpu(), k)
        r = getattr(self, f"{prefix}_out")(out)  # (B, K, C)
        i0, i1, w = (torch.from_numpy(a).to(h.device) for a in chunk_interpolation(n, s, n_chunks.cpu().numpy()))
        return torch.gather(r, 1, i0.unsqueeze(-1).expand(b, n, c)) * (1 - w).unsqueeze(-1) + \
            torch.gather(r, 1, i1.unsqueeze(-1).expand(b, n, c)) * w.unsqueeze(-1)


class BiLSTM(nn.Module):
    """Input projection, a bidirectional LSTM (``layers // 4`` layers), a linear head."""

    def __init__(self, p, n_features: int, n_heads: int):
        super().__init__()
        c = p.channels
        self.inp = nn.Linear(n_features, c)
        self.lstm = nn.LSTM(c, c, num_layers=max(1, p.layers // 4), batch_first=True, bidirectional=True,
                            dropout=p.dropout if p.layers // 4 > 1 else 0.0)
        self.out = nn.Linear(2 * c, n_heads)

    def forward(self, x, mask):
        lengths = mask.sum(1).long().cpu()
        h = torch.relu(self.inp(x))
        return self.out(_lstm_fp32(self.lstm, h, lengths, x.shape[1]))


def _lstm_fp32(lstm, x, lengths, total_length: int):
    """``lstm`` over the padded batch ``x`` (B, L, C) of ``lengths`` (on the CPU), in float32 also under
    mixed precision (the recurrence is cheap; its numpy twin computes in float32)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        packed = nn.utils.rnn.pack_padded_sequence(x.float(), lengths, batch_first=True, enforce_sorted=False)
        out, _ = lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=total_length)
    return out


class Block(nn.Module):
    """Pre-norm encoder block; attention through scaled_dot_product_attention (fused kernels)."""

    def __init__(self, c: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.ff = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))
        self.drop = nn.Dropout(dropout)

    def forward(self, h, attend):
        b, n, c = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        h = h + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, c)))
        return h + self.drop(self.ff(self.norm2(h)))


class Transformer(nn.Module):
    """The seed's method 2 trained from scratch: encoder + dense + sigmoid, sinusoidal positions."""

    def __init__(self, p, n_features: int, n_heads: int):
        super().__init__()
        self.channels = p.channels
        self.inp = nn.Linear(n_features, p.channels)
        self.blocks = nn.ModuleList([Block(p.channels, p.heads, p.dropout) for _ in range(max(1, p.layers // 2))])
        self.out = nn.Linear(p.channels, n_heads)

    def forward(self, x, mask):
        n, c = x.shape[1], self.channels
        pos = torch.arange(n, device=x.device, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, c, 2, device=x.device, dtype=torch.float32) * (-math.log(10000.0) / c))
        pe = torch.zeros(n, c, device=x.device)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        h = self.inp(x) + pe
        attend = (mask > 0)[:, None, None, :]
        for block in self.blocks:
            h = block(h, attend)
        return self.out(h)


ARCHITECTURES = {"cnn": CNN, "bilstm": BiLSTM, "transformer": Transformer}


def build_module(arch: str, p, n_features: int, n_heads: int) -> nn.Module:
    """A fresh module of an architecture for ``n_features`` inputs and ``n_heads`` outputs."""
    return ARCHITECTURES[arch](p, n_features, n_heads)
