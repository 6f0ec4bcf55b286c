"""Word2Vec residue vectors (the seed's method 1): one learned vector per residue code, averaged over a window.

Learning the vectors needs the ``[w2v]`` extra (gensim); using them needs numpy only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import require
from ..records import N_TOKENS, encode
from .encoders import window_mean


def train_residue_vectors(sequences: Sequence[str], vector_size: int = 100, window: int = 5, epochs: int = 5,
                          seed: int = 0) -> np.ndarray:
    """(21, vector_size) float32 vectors of the residue codes, learned by Word2Vec on the sequences."""
    gensim = require("gensim.models", "w2v")
    # one token per residue code, so that rare letters are encoded as at prediction time
    sentences = [[str(c) for c in encode(s)] for s in sequences]
    w2v = gensim.Word2Vec(sentences=sentences, vector_size=vector_size, window=window, min_count=1,
                          epochs=epochs, seed=seed, workers=1)
    vectors = np.zeros((N_TOKENS, vector_size), dtype=np.float32)
    for code in range(N_TOKENS):
        if str(code) in w2v.wv:
            vectors[code] = w2v.wv[str(code)]
    return vectors


def window_vectors(vectors: np.ndarray, sequence: str, half_width: int) -> np.ndarray:
    """(L, d) mean of the residue vectors over the window [i - h, i + h] of every residue."""
    return window_mean(vectors[encode(sequence)], half_width)
