"""The estimator convention every model family follows, and its save/load format.

A model folder holds ``model.json`` (family, format version, parameters, array shapes, training
metadata) and ``weights.npz`` (numpy arrays only, loaded with ``allow_pickle=False``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from .. import __version__
from ..errors import ModelError
from ..regions import DEFAULT_THRESHOLD, binary_calls
from ..sequences import Record

FORMAT_VERSION = 1
TRACKS = ("pdb", "nox")


@dataclass
class Params:
    """Base class of every family's constructor parameters."""


class Estimator:
    """Base class: ``fit(records)``, ``predict_proba(sequences)``, ``predict(sequences, threshold)``,
    ``save(folder)`` and ``load(folder)``.

    ``predict_proba`` returns one float32 array of disorder scores in [0, 1] per sequence.
    Models with two outputs (``tracks``) take ``track='pdb'|'nox'``.
    """

    family: ClassVar[str] = ""
    params_class: ClassVar[type[Params]] = Params

    def __init__(self, params: Params | None = None, **kwargs: Any):
        self.params = params or self.params_class(**kwargs)
        self.arrays: dict[str, np.ndarray] = {}
        self.meta: dict[str, Any] = {}
        self.tracks: tuple[str, ...] = ("pdb",)

    # -- to be provided by families
    def fit(self, records: Sequence[Record], valid: Sequence[Record] | None = None) -> "Estimator":
        raise NotImplementedError

    def _predict(self, sequences: Sequence[str], track: str) -> list[np.ndarray]:
        raise NotImplementedError

    def _after_load(self) -> None:
        """Rebuild derived state from ``self.arrays`` after loading."""

    # -- shared
    @property
    def is_fitted(self) -> bool:
        return bool(self.arrays)

    def predict_proba(self, sequences: Sequence[str], track: str = "pdb") -> list[np.ndarray]:
        """Disorder scores in [0, 1], one float32 array per sequence."""
        if not self.is_fitted:
            raise ModelError(f"the {self.family} model is not trained")
        if track not in self.tracks:
            raise ModelError(f"this {self.family} model has no '{track}' track (it has {', '.join(self.tracks)})")
        if isinstance(sequences, str):
            raise TypeError("predict_proba takes a list of sequences")
        return [np.asarray(s, dtype=np.float32) for s in self._predict(list(sequences), track)]

    def predict(self, sequences: Sequence[str], threshold: float = DEFAULT_THRESHOLD,
                track: str = "pdb") -> list[np.ndarray]:
        """0/1 calls (uint8) at ``threshold``, one array per sequence."""
        return [binary_calls(s, threshold) for s in self.predict_proba(sequences, track)]

    def save(self, folder: str | Path) -> Path:
        """Write ``model.json`` and ``weights.npz`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        doc = {
            "family": self.family,
            "format_version": FORMAT_VERSION,
            "idrkit_version": __version__,
            "params": asdict(self.params),
            "tracks": list(self.tracks),
            "shapes": {k: list(v.shape) for k, v in self.arrays.items()},
            "meta": self.meta,
        }
        np.savez(folder / "weights.npz", **self.arrays)
        (folder / "model.json").write_text(json.dumps(doc, indent=2, default=_json_default))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Estimator":
        """Read a folder written by :meth:`save`, checking family, version and array shapes."""
        folder = Path(folder)
        doc = read_model_json(folder)
        if doc.get("family") != cls.family:
            raise ModelError(f"{folder}: a '{doc.get('family')}' model, not '{cls.family}'")
        known = {f.name for f in fields(cls.params_class)}
        params = cls.params_class(**{k: v for k, v in doc.get("params", {}).items() if k in known})
        model = cls(params)
        model._folder = folder  # families that keep files beside weights.npz (adapters, backbones) read them here
        model.meta = doc.get("meta", {})
        model.tracks = tuple(doc.get("tracks", ["pdb"]))
        try:
            with np.load(folder / "weights.npz", allow_pickle=False) as z:
                model.arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder}: cannot read weights.npz ({exc})") from None
        for name, shape in doc.get("shapes", {}).items():
            if name not in model.arrays or list(model.arrays[name].shape) != list(shape):
                raise ModelError(f"{folder}: weight '{name}' is missing or has the wrong shape")
        model._after_load()
        return model


def read_model_json(folder: Path) -> dict:
    """The parsed ``model.json`` of a model folder, with its format version checked."""
    path = folder / "model.json"
    if not path.is_file():
        raise ModelError(f"{folder}: not a model folder (no model.json)")
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise ModelError(f"{path}: invalid JSON ({exc})") from None
    if doc.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"{folder}: model format {doc.get('format_version')} is newer than this idrkit "
                         f"reads ({FORMAT_VERSION}); upgrade idrkit")
    return doc


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def labelled_arrays(records: Sequence[Record]) -> list[tuple[str, np.ndarray]]:
    """(sequence, labels) of the records that carry labels; refuses a set with none."""
    out = [(r.sequence, r.labels) for r in records if r.labels is not None]
    if not out:
        raise ModelError("no labelled records to train on")
    return out
