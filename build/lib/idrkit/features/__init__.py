"""Per-residue encoders: hand-made features (:mod:`.encoders`), Word2Vec residue vectors (:mod:`.word2vec`)
and protein-LM embeddings with their cache (:mod:`.embeddings`)."""

from .encoders import (
    FEATURE_VERSION,
    SCALES,
    FeatureSpec,
    entropy_windows,
    featurize,
    featurize_many,
    one_hot,
    scale_values,
    window_mean,
    window_means,
)

__all__ = ["FEATURE_VERSION", "SCALES", "FeatureSpec", "entropy_windows", "featurize", "featurize_many", "one_hot", "scale_values",
           "window_mean", "window_means"]
