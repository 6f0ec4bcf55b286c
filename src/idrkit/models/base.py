"""The estimator convention every model family follows, and its save/load format.

A model folder holds ``model.json`` (family, format version, parameters, the feature specification,
array shapes, training metadata) and ``weights.npz`` (numpy arrays only, loaded with
``allow_pickle=False``). Run settings (checkpoint folders, warm-start paths, progress bars) are not saved
in ``model.json``: the model card records them.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from .._version import __version__
from ..errors import ModelError
from ..features.encoders import FeatureSpec
from ..records import SCALED_TRACKS, Record
from ..regions import DEFAULT_MAX_GAP, DEFAULT_MIN_LENGTH, DEFAULT_THRESHOLD, CallOptions, track_calls

FORMAT_VERSION = 2  # 2: model.json holds the feature specification
DEFAULT_THRESHOLDS = {"plddt": 0.7}  # pLDDT below 70: AlphaFold's boundary of confident structure


def run_setting(default: Any = ""):
    """A parameter that describes a run, not the model (kept out of ``model.json``)."""
    return field(default=default, metadata={"run": True})


@dataclass
class Params:
    """Base class of every family's constructor parameters."""


def model_params(params: Params) -> dict:
    """The parameters that define a model (run settings left out)."""
    return {f.name: getattr(params, f.name) for f in fields(params) if not f.metadata.get("run")}


def _type_ok(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, str):
        return isinstance(value, str)
    return True


def check_params(params_class: type[Params], values, where: str) -> Params:
    """Parameters from ``model.json``, each of the type of its default; unknown keys are ignored."""
    if not isinstance(values, dict):
        raise ModelError(f"{where}: field 'params' must be an object")
    kept = {}
    for f in fields(params_class):
        if f.name not in values:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        if not _type_ok(values[f.name], default):
            raise ModelError(f"{where}: field 'params.{f.name}' should be a {type(default).__name__}, "
                             f"not {values[f.name]!r}")
        kept[f.name] = values[f.name]
    try:
        params = params_class(**kept)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: invalid parameters ({exc})") from None
    check = getattr(params, "check", None)
    if check:
        check(where)
    return params


def resolve_threshold(model: "Estimator", track: str = "pdb", threshold: float | None = None) -> float:
    """The threshold of a track: the user's when given, else the model's own (stored at training), else 0.5.

    The one place this decision is made: prediction, evaluation, training, the web service and the
    benchmark scripts all call it.
    """
    if threshold is not None:
        return float(threshold)
    return float(model.meta.get("thresholds", {}).get(track, DEFAULT_THRESHOLDS.get(track, DEFAULT_THRESHOLD)))


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
        self.spec: FeatureSpec | None = self.default_spec()
        self.folder: Path | None = None  # where a loaded model came from (families with extra files read them)
        self.report: list[dict] = []  # per-protein problems of the last prediction (index, message)

    # -- to be provided by families
    def default_spec(self) -> FeatureSpec | None:
        """The hand-made features a new model of this family computes (None: it uses none)."""
        return None

    def fit(self, records: Sequence[Record], valid: Sequence[Record] | None = None) -> "Estimator":
        raise NotImplementedError

    def _predict(self, sequences: Sequence[str], track: str) -> list[np.ndarray]:
        raise NotImplementedError

    def _after_load(self) -> None:
        """Rebuild derived state from ``self.arrays`` after loading."""

    def parts(self) -> list["Estimator"]:
        """The models this one is made of and saves beside itself (none for a single network)."""
        return []

    # -- shared
    @property
    def is_fitted(self) -> bool:
        return bool(self.arrays)

    def predict_proba(self, sequences: Sequence[str], track: str = "pdb") -> list[np.ndarray]:
        """Scores in [0, 1] (pLDDT on 0-100 for the ``plddt`` track), one float32 array per sequence."""
        if not self.is_fitted:
            raise ModelError(f"the {self.family} model is not trained")
        if track not in self.tracks:
            raise ModelError(f"this {self.family} model has no '{track}' track (it has {', '.join(self.tracks)})")
        if isinstance(sequences, str):
            raise TypeError("predict_proba takes a list of sequences")
        scale = np.float32(SCALED_TRACKS.get(track, 1.0))
        return [np.asarray(s, dtype=np.float32) * scale for s in self._predict(list(sequences), track)]

    def predict(self, sequences: Sequence[str], threshold: float | None = None, track: str = "pdb",
                min_length: int = DEFAULT_MIN_LENGTH, max_gap: int = DEFAULT_MAX_GAP) -> list[np.ndarray]:
        """0/1 calls (uint8), one array per sequence: the same calls as ``idrkit predict`` with these options
        (the model's own threshold unless one is given, then region smoothing)."""
        options = CallOptions(track, threshold, min_length, max_gap)
        thr = resolve_threshold(self, track, threshold)
        return [track_calls(s, options, thr) for s in self.predict_proba(sequences, track)]

    def save(self, folder: str | Path) -> Path:
        """Write ``model.json`` and ``weights.npz`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        doc = {
            "family": self.family,
            "format_version": FORMAT_VERSION,
            "idrkit_version": __version__,
            "params": model_params(self.params),
            "features": self.spec.to_dict() if self.spec is not None else None,
            "tracks": list(self.tracks),
            "shapes": {k: list(v.shape) for k, v in self.arrays.items()},
            "meta": self.meta,
        }
        np.savez(folder / "weights.npz", **self.arrays)
        (folder / "model.json").write_text(json.dumps(doc, indent=2, default=_json_default))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Estimator":
        """Read a folder written by :meth:`save`, checking family, version, features and array shapes."""
        folder = Path(folder)
        doc = read_model_json(folder)
        where = str(folder / "model.json")
        if doc["family"] != cls.family:
            raise ModelError(f"{folder}: a '{doc['family']}' model, not '{cls.family}'")
        model = cls(check_params(cls.params_class, doc.get("params", {}), where))
        model.folder = folder
        model.meta = doc.get("meta", {})
        model.tracks = tuple(doc.get("tracks", ["pdb"]))
        if doc.get("features") is not None:
            model.spec = FeatureSpec.from_dict(doc["features"], where)
        elif model.spec is not None and doc["format_version"] >= 2:
            raise ModelError(f"{where}: field 'features' is missing")
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
    """The parsed ``model.json`` of a model folder, with the type of every field checked."""
    path = Path(folder) / "model.json"
    if not path.is_file():
        raise ModelError(f"{folder}: not a model folder (no model.json)")
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: invalid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ModelError(f"{path}: must hold a JSON object, not a {type(doc).__name__}")
    version = doc.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelError(f"{path}: field 'format_version' must be a whole number, not {version!r}")
    if version > FORMAT_VERSION:
        raise ModelError(f"{folder}: model format {version} is newer than this idrkit reads ({FORMAT_VERSION}); "
                         "upgrade idrkit")
    doc["format_version"] = version
    expected = {"family": str, "params": dict, "tracks": list, "shapes": dict, "meta": dict}
    for key, kind in expected.items():
        if key in doc and not isinstance(doc[key], kind):
            raise ModelError(f"{path}: field '{key}' must be {'an object' if kind is dict else 'a ' + kind.__name__}, "
                             f"not {type(doc[key]).__name__}")
    if "family" not in doc:
        raise ModelError(f"{path}: field 'family' is missing")
    if not all(isinstance(t, str) for t in doc.get("tracks", [])) or not doc.get("tracks", ["pdb"]):
        raise ModelError(f"{path}: field 'tracks' must be a non-empty list of names")
    for name, shape in doc.get("shapes", {}).items():
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ModelError(f"{path}: field 'shapes.{name}' must be a list of sizes")
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
