"""idrkit: predict intrinsically disordered regions of proteins from their sequence."""

from ._version import __version__
from .errors import IdrkitError, InputError, MissingDependencyError, ModelError


def predict_disorder(sequence, model=None, track: str = "pdb"):
    """Per-residue disorder scores of one sequence (or a list of them) with the shipped default model."""
    from .predict import predict_disorder as _predict

    return _predict(sequence, model=model, track=track)


__all__ = ["IdrkitError", "InputError", "MissingDependencyError", "ModelError", "predict_disorder",
           "__version__"]
