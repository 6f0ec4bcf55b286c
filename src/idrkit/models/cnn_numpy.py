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


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis; the means come from matrix products, which BLAS runs fastest."""
    ones = np.full((x.shape[1], 1), 1.0 / x.shape[1], dtype=x.dtype)
    mu = x @ ones
    centred = x - mu
    var = (centred * centred) @ ones
    return centred * (1.0 / np.sqrt(var + eps)) * w + b


def context_layers(p) -> list[int]:
    """The CNN layers after which the protein's mean hidden state is added (``context`` models)."""
    if not p.context:
        return []
    cycle = len(p.dilations)
    return sorted({min(i + cycle - 1, p.layers - 1) for i in range(0, p.layers, cycle)})


def cnn_forward(arrays: dict[str, np.ndarray], params, x: np.ndarray, mask: np.ndarray,
                spans: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Logits (N, heads) of the CNN for a packed input ``x`` (N, F); ``mask`` is 0 on separator rows.

    ``spans`` (start, end) of each sequence are needed by ``context`` models, which add a per-protein mean.
    """
    after = context_layers(params)
    if after and spans is None:
        raise ModelError("a context CNN needs the span of every packed sequence")
    m = mask[:, None]
    n = x.shape[0]
    h = (x @ arrays["w.inp.weight"].T + arrays["w.inp.bias"]) * m
    margin = max(params.dilations) * (params.kernel // 2)
    buf = np.zeros((n + 2 * margin, h.shape[1]), dtype=h.dtype)  # zero margins stand for the padding
    for i in range(params.layers):
        d = params.dilations[i % len(params.dilations)]
        z = layer_norm(h, arrays[f"w.norms.{i}.weight"], arrays[f"w.norms.{i}.bias"])
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
            z = layer_norm(h, arrays[f"w.ctx_norms.{j}.weight"], arrays[f"w.ctx_norms.{j}.bias"])
            w, b = arrays[f"w.ctxs.{j}.weight"], arrays[f"w.ctxs.{j}.bias"]
            for s, e in spans:
                h[s:e] += z[s:e].mean(axis=0) @ w.T + b
    z = np.maximum(layer_norm(h, arrays["w.out_norm.weight"], arrays["w.out_norm.bias"]), 0)
    return z @ arrays["w.out.weight"].T + arrays["w.out.bias"]


def packed_probabilities(arrays: dict[str, np.ndarray], params, features: Sequence[np.ndarray],
                         head: int) -> list[np.ndarray]:
    """Probabilities of one output head for several sequences' standardised features, in one packed pass."""
    gap = max(params.dilations) * (params.kernel // 2)
    n_total = sum(f.shape[0] for f in features) + gap * (len(features) + 1)
    x = np.zeros((n_total, features[0].shape[1]), dtype=np.float32)
    mask = np.zeros(n_total, dtype=np.float32)
    spans = []
    pos = gap
    for f in features:
        x[pos:pos + f.shape[0]] = f
        mask[pos:pos + f.shape[0]] = 1
        spans.append((pos, pos + f.shape[0]))
        pos += f.shape[0] + gap
    logits = cnn_forward(arrays, params, x, mask, spans)[:, head]
    probs = 1 / (1 + np.exp(-logits))
    return [probs[s:e] for s, e in spans]


def prediction_threads() -> int:
    """Threads for numpy inference: ``$IDRKIT_THREADS``, else the cores this process may use."""
    if os.environ.get("IDRKIT_THREADS"):
        return max(1, int(os.environ["IDRKIT_THREADS"]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


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
                    max_residues: int = 50_000) -> list[np.ndarray]:
    """``predict_chunk`` over chunks of the sequences in threads (numpy releases the GIL in its kernels),
    one BLAS thread each; results in input order."""
    chunks = residue_chunks(sequences, max_residues)
    threads = min(len(chunks), prediction_threads())
    if threads <= 1:
        parts = [predict_chunk(c) for c in chunks]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with blas_threads(1), ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(predict_chunk, chunks))
    return [arr for part in parts for arr in part]
