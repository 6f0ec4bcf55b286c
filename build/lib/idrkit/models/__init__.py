"""Model families behind one estimator interface, found by name in :data:`FAMILIES`."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import ModelError
from .base import Estimator, read_model_json

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"  # the models shipped inside the package

FAMILIES: dict[str, str] = {
    "w2v-nb": "idrkit.models.w2v_nb:Word2VecNB",
    "gbdt": "idrkit.models.gbdt:GradientBoosting",
    "cnn": "idrkit.models.neural:CNNTagger",
    "bilstm": "idrkit.models.neural:BiLSTMTagger",
    "transformer": "idrkit.models.neural:TransformerTagger",
    "ensemble": "idrkit.models.ensemble:Ensemble",
    "stack": "idrkit.models.stack:Stack",
    "plm": "idrkit.models.plm:PLMTagger",
    "llm": "idrkit.models.llm:LLMTagger",
}


def get_family(name: str) -> type[Estimator]:
    """The estimator class registered under ``name``."""
    if name not in FAMILIES:
        raise ModelError(f"unknown model family '{name}' (choose from {', '.join(FAMILIES)})")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def shipped_models() -> list[str]:
    """Names of the models shipped inside the package (``default``, ``fast``)."""
    return sorted(p.name for p in WEIGHTS.iterdir() if (p / "model.json").is_file()) if WEIGHTS.is_dir() else []


def model_folder(model: str | Path | None) -> Path:
    """The folder of a model: a path to a model folder, else a shipped model's name (None: ``default``)."""
    name = "default" if model is None else str(model)
    if (Path(name) / "model.json").is_file():
        return Path(name).resolve()
    if "/" not in name and name in shipped_models():
        return (WEIGHTS / name).resolve()
    if name in ("default", "fast"):
        raise ModelError(f"the {name} model is missing from the installation ({WEIGHTS / name})")
    return Path(name).resolve()  # loading it names the problem


def load_model(folder: str | Path) -> Estimator:
    """Load any saved model folder, whatever its family."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such model folder")
    return get_family(read_model_json(folder)["family"]).load(folder)


__all__ = ["FAMILIES", "WEIGHTS", "Estimator", "get_family", "load_model", "model_folder", "shipped_models"]
