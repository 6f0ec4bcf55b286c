"""Torch-free inference of the dilated CNN: how the shipped models predict, with numpy alone.

Many sequences are packed into one array with zero rows between them, at least as wide as the largest
dilated half-kernel, so that every layer runs as a few large float32 matrix products.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Sequence

import numpy as np

from ..errors import ModelError
from ._runtime import available_cores


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5,
               out: np.ndarray | None = None) -> np.ndarray:
    """LayerNorm over the last axis (into ``out`` when given); the means come from matrix products, which
    BLAS runs fastest, and the rest happens in place."""
    ones = np.full((x.shape[1], 1), 1.0 / x.shape[1], dtype=x.dtype)
    out = np.subtract(x, x @ ones, out=out)
    inv = np.square(out) @ ones
    inv += eps
    np.sqrt(inv, out=inv)
    np.divide(1.0, inv, out=inv)
    out *= inv
    out *= w
    out += b
    return out


def context_layers(p) -> list[int]:
    """The CNN layers after which the protein's mean hidden state is added (``context`` models)."""
    if not p.context:
        return []
    cycle = len(p.dilations)
    return sorted({min(i + cycle - 1, p.layers - 1) for i in range(0, p.layers, cycle)})


def mid_layer(p) -> int | None:
    """The CNN layer after which a ``recurrent_mid`` model adds its second chunk context (None: no such)."""
    if not getattr(p, "recurrent", 0) or not getattr(p, "recurrent_mid", False):
        return None
    return max(0, p.layers // 2 - 1)


def chunk_interpolation(n: int, size: int, n_chunks: np.ndarray):
    """For residues 0..n-1 of sequences with ``n_chunks`` (B,) chunks of ``size`` residues each: the two
    chunks around each residue and the weight of the second (linear between chunk centres, flat beyond the
    first and last centre). Returns (i0, i1, w), each (B, n)."""
    last = (np.asarray(n_chunks, dtype=np.int64) - 1)[:, None]
    u = np.minimum(np.maximum((np.arange(n) + 0.5) / size - 0.5, 0.0)[None, :], last)
    i0 = np.floor(u).astype(np.int64)
    return i0, np.minimum(i0 + 1, last), (u - i0).astype(np.float32)


def chunk_context(arrays: dict[str, np.ndarray], size: int, h: np.ndarray, spans: list[tuple[int, int]],
                  prefix: str = "rec") -> None:
    """Adds, in place, the ``recurrent`` CNN's chunk context (see :class:`~idrkit.models.torch_modules.CNN`)
    to the packed hidden states ``h`` of the sequences at ``spans``; ``prefix`` names its weights (``rec``
    before the head, ``rec_mid`` after the middle layer)."""
    from .lstm_numpy import bidirectional_layer

    g = layer_norm(h, arrays[f"w.{prefix}_norm.weight"], arrays[f"w.{prefix}_norm.bias"])
    n_chunks = np.array([-(-(e - s) // size) for s, e in spans], dtype=np.int64)
    k = int(n_chunks.max())
    pooled = np.zeros((len(spans), k, h.shape[1]), np.float32)
    for b, (s, e) in enumerate(spans):
        full = (e - s) // size
        pooled[b, :full] = g[s:s + full * size].reshape(full, size, g.shape[1]).mean(axis=1)
        if full < n_chunks[b]:
            pooled[b, full] = g[s + full * size:e].mean(axis=0)
    r = bidirectional_layer(arrays, f"w.{prefix}.{{}}_l0", pooled, n_chunks) @ arrays[f"w.{prefix}_out.weight"].T + \
        arrays[f"w.{prefix}_out.bias"]
    for b, (s, e) in enumerate(spans):
        i0, i1, w = chunk_interpolation(e - s, size, n_chunks[b:b + 1])
        w = w[0][:, None]
        h[s:e] += r[b, i0[0]] * (1 - w) + r[b, i1[0]] * w


def cnn_forward(arrays: dict[str, np.ndarray], params, x: np.ndarray, mask: np.ndarray,
                spans: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Logits (N, heads) of the CNN for a packed input ``x`` (N, F); ``mask`` is 0 on separator rows.

    Each dilated convolution is k matrix products of shifted views of the normalised activations, which sit
    in a buffer with zero margins (the padding). ``spans`` (start, end) of each sequence are needed by
    ``context`` models, which add a per-protein mean.
    """
    after = context_layers(params)
    if after and spans is None:
        raise ModelError("a context CNN needs the span of every packed sequence")
    if getattr(params, "recurrent", 0) and spans is None:
        raise ModelError("a recurrent CNN needs the span of every packed sequence")
    mid = mid_layer(params)
    m = mask[:, None]
    n = x.shape[0]
    h = (x @ arrays["w.inp.weight"].T + arrays["w.inp.bias"]) * m
    margin = max(params.dilations) * (params.kernel // 2)
    buf = np.zeros((n + 2 * margin, h.shape[1]), dtype=h.dtype)
    z = buf[margin:margin + n]
    acc = np.empty_like(h)
    for i in range(params.layers):
        d = params.dilations[i % len(params.dilations)]
        layer_norm(h, arrays[f"w.norms.{i}.weight"], arrays[f"w.norms.{i}.bias"], out=z)
        np.maximum(z, 0, out=z)
        z *= m
        w = arrays[f"w.convs.{i}.weight"]  # (out, in, k)
        half = d * (params.kernel // 2)
        np.matmul(buf[margin - half:margin - half + n], w[:, :, 0].T, out=acc)
        for j in range(1, params.kernel):
            start = margin - half + j * d
            acc += buf[start:start + n] @ w[:, :, j].T
        acc += arrays[f"w.convs.{i}.bias"]
        acc *= m
        h += acc
        if i in after:
            j = after.index(i)
            g = layer_norm(h, arrays[f"w.ctx_norms.{j}.weight"], arrays[f"w.ctx_norms.{j}.bias"])
            w, b = arrays[f"w.ctxs.{j}.weight"], arrays[f"w.ctxs.{j}.bias"]
            for s, e in spans:
                h[s:e] += g[s:e].mean(axis=0) @ w.T + b
        if i == mid:
            chunk_context(arrays, params.recurrent, h, spans, "rec_mid")
    if getattr(params, "recurrent", 0):
        chunk_context(arrays, params.recurrent, h, spans)
    z = np.maximum(layer_norm(h, arrays["w.out_norm.weight"], arrays["w.out_norm.bias"]), 0)
    return z @ arrays["w.out.weight"].T + arrays["w.out.bias"]


def packed_probabilities(arrays: dict[str, np.ndarray], params, features: np.ndarray, lengths: Sequence[int],
                         head: int | list[int]) -> list[np.ndarray]:
    """Probabilities of one output head (or, for a list of heads, a (length, heads) array each) for several
    sequences in one packed pass.

    ``features`` are the sequences' standardised feature rows, concatenated (``lengths`` rows each); they
    are placed with ``gap`` zero rows between sequences so that no convolution sees a neighbour.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    gap = max(params.dilations) * (params.kernel // 2)
    offsets = gap * np.arange(1, lengths.size + 1) + np.concatenate(([0], np.cumsum(lengths)[:-1]))
    rows = np.repeat(offsets - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
    n_total = int(lengths.sum()) + gap * (lengths.size + 1)
    x = np.zeros((n_total, features.shape[1]), dtype=np.float32)
    x[rows] = features
    mask = np.zeros(n_total, dtype=np.float32)
    mask[rows] = 1
    spans = list(zip(offsets.tolist(), (offsets + lengths).tolist()))
    logits = cnn_forward(arrays, params, x, mask, spans)[:, head]
    probs = 1 / (1 + np.exp(-logits))
    return [probs[s:e] for s, e in spans]


def prediction_threads() -> int:
    """Threads for numpy inference: ``$IDRKIT_THREADS``, else the cores this process may use."""
    if os.environ.get("IDRKIT_THREADS"):
        return max(1, int(os.environ["IDRKIT_THREADS"]))
    return available_cores()


def blas_threads(n: int):
    """A context limiting BLAS threads (threadpoolctl when installed, else a no-op)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n)


def residue_chunks(sequences: Sequence[str], max_residues: int) -> list[list[str]]:
    """Consecutive sequences grouped into chunks of about ``max_residues`` residues."""
    chunks, chunk, size = [], [], 0
    for s in sequences:
        chunk.append(s)
        size += len(s)
        if size >= max_residues:
            chunks.append(chunk)
            chunk, size = [], 0
    if chunk:
        chunks.append(chunk)
    return chunks


def parallel_chunks(sequences: Sequence[str], predict_chunk: Callable[[list[str]], list[np.ndarray]],
                    max_residues: int = 16_000) -> list[np.ndarray]:
    """``predict_chunk`` over chunks of the sequences in threads (numpy releases the GIL in its kernels),
    one BLAS thread each; results in input order. Chunks of about 16,000 residues keep the working arrays
    in cache (measured faster than 50,000, and a third of the memory)."""
    chunks = residue_chunks(sequences, max_residues)
    threads = min(len(chunks), prediction_threads())
    if threads <= 1:
        parts = [predict_chunk(c) for c in chunks]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with blas_threads(1), ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(predict_chunk, chunks))
    return [arr for part in parts for arr in part]
