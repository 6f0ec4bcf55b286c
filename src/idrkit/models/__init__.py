"""Model families behind one estimator interface, found by name in :data:`FAMILIES`."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import ModelError
from .base import Estimator, read_model_json

FAMILIES: dict[str, str] = {
    "w2v-nb": "idrkit.models.w2v_nb:Word2VecNB",
    "gbdt": "idrkit.models.gbdt:GradientBoosting",
    "cnn": "idrkit.models.neural:CNNTagger",
    "bilstm": "idrkit.models.neural:BiLSTMTagger",
    "transformer": "idrkit.models.neural:TransformerTagger",
    "ensemble": "idrkit.models.ensemble:Ensemble",
    "plm": "idrkit.models.plm:PLMTagger",
    "llm": "idrkit.models.llm:LLMTagger",
}


def get_family(name: str) -> type[Estimator]:
    """The estimator class registered under ``name``."""
    if name not in FAMILIES:
        raise ModelError(f"unknown model family '{name}' (choose from {', '.join(FAMILIES)})")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def load_model(folder: str | Path) -> Estimator:
    """Load any saved model folder, whatever its family."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such model folder")
    return get_family(read_model_json(folder)["family"]).load(folder)


__all__ = ["FAMILIES", "Estimator", "get_family", "load_model"]
