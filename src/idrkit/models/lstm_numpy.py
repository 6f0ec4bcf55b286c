"""Torch-free inference of the BiLSTM family: the same numbers as :class:`idrkit.models.torch_modules.BiLSTM`.

A padded batch runs one time step at a time in each direction; the reverse direction starts at each
sequence's own last residue (as a packed sequence does in torch), so padding never reaches a real residue.
Gate order and biases follow ``torch.nn.LSTM`` (input, forget, cell, output; ``b_ih + b_hh``).
"""

from __future__ import annotations

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def lstm_direction(xp: np.ndarray, lengths: np.ndarray, w_hh: np.ndarray, reverse: bool) -> np.ndarray:
    """Hidden states (B, L, H) of one direction from the input projections ``xp`` (B, L, 4H)."""
    b, n, _ = xp.shape
    hidden = w_hh.shape[1]
    if reverse:  # position t of the reversed run is residue length - 1 - t of its own sequence
        idx = lengths[:, None] - 1 - np.arange(n)[None, :]
        valid = idx >= 0
        idx = np.where(valid, idx, 0)
        xp = np.take_along_axis(xp, idx[:, :, None], axis=1)
    w = np.ascontiguousarray(w_hh.T)
    h = np.zeros((b, hidden), np.float32)
    c = np.zeros((b, hidden), np.float32)
    out = np.zeros((b, n, hidden), np.float32)
    for t in range(n):
        g = xp[:, t] + h @ w
        i, f = _sigmoid(g[:, :hidden]), _sigmoid(g[:, hidden:2 * hidden])
        o = _sigmoid(g[:, 3 * hidden:])
        c = f * c + i * np.tanh(g[:, 2 * hidden:3 * hidden])
        h = o * np.tanh(c)
        out[:, t] = h
    if reverse:  # the same index map takes the states back to residue order (it is its own inverse)
        out = np.take_along_axis(out, idx[:, :, None], axis=1) * valid[:, :, None]
    return out


def bidirectional_layer(arrays: dict[str, np.ndarray], name: str, h: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Outputs (B, L, 2H) of one bidirectional ``torch.nn.LSTM`` layer whose weights are stored as
    ``{name}.weight_ih`` etc. (``name`` e.g. ``w.lstm.{}_l0``, the ``{}`` taking the weight's name), for a
    padded batch ``h`` (B, L, F) of sequences of the given lengths."""
    outs = []
    for suffix, reverse in (("", False), ("_reverse", True)):
        key = name + suffix
        xp = h @ arrays[key.format("weight_ih")].T + arrays[key.format("bias_ih")] + arrays[key.format("bias_hh")]
        outs.append(lstm_direction(xp.astype(np.float32), lengths, arrays[key.format("weight_hh")], reverse))
    return np.concatenate(outs, axis=-1)


def bilstm_logits(arrays: dict[str, np.ndarray], n_layers: int, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Logits (B, L, heads) of a padded batch ``x`` (B, L, F) of sequences of the given lengths."""
    h = np.maximum(x @ arrays["w.inp.weight"].T + arrays["w.inp.bias"], 0).astype(np.float32)
    for layer in range(n_layers):
        h = bidirectional_layer(arrays, f"w.lstm.{{}}_l{layer}", h, lengths)
    return h @ arrays["w.out.weight"].T + arrays["w.out.bias"]
