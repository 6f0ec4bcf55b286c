"""Per-residue encoders: one-hot, physico-chemical scales, windows, word2vec and protein-LM embeddings."""

from .encoders import (
    SCALES,
    FeatureSpec,
    entropy_windows,
    featurize,
    one_hot,
    scale_values,
    window_mean,
    window_means,
)

__all__ = ["SCALES", "FeatureSpec", "entropy_windows", "featurize", "one_hot", "scale_values", "window_mean", "window_means"]
