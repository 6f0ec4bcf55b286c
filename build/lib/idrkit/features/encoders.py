"""Hand-made per-residue features, all vectorised: no Python loop over residues.

Scales (values per residue in the order of :data:`idrkit.records.STANDARD`; the unknown residue
takes the mean of the 20):

- ``hydropathy``: Kyte J, Doolittle RF (1982) J Mol Biol 157:105-132.
- ``charge``: net side-chain charge at pH 7 (D, E -1; K, R +1; H +0.1, about 10% protonated).
- ``top_idp``: TOP-IDP disorder propensity, Campen A et al. (2008) Protein Pept Lett 15:956-963.
- ``flexibility``: average flexibility index, Bhaskaran R, Ponnuswamy PK (1988) Int J Pept Protein Res 32:241-255.
- ``helix``, ``sheet``, ``turn``: Chou PY, Fasman GD (1978) Adv Enzymol 47:45-148.
- ``bulkiness``: Zimmerman JM, Eliezer N, Simha R (1968) J Theor Biol 21:170-201.
- ``polarity``: Grantham R (1974) Science 185:862-864.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ModelError
from ..records import N_TOKENS, STANDARD, encode

FEATURE_VERSION = 1
"""Version of the feature code; a model saved with another version is refused at load."""

#                 A      C      D      E      F      G      H      I      K      L
#                 M      N      P      Q      R      S      T      V      W      Y
_RAW_SCALES = {
    "hydropathy": [1.8, 2.5, -3.5, -3.5, 2.8, -0.4, -3.2, 4.5, -3.9, 3.8,
                   1.9, -3.5, -1.6, -3.5, -4.5, -0.8, -0.7, 4.2, -0.9, -1.3],
    "charge": [0, 0, -1, -1, 0, 0, 0.1, 0, 1, 0,
               0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
    "top_idp": [0.06, 0.02, 0.192, 0.736, -0.697, 0.166, 0.303, -0.486, 0.586, -0.326,
                -0.397, 0.007, 0.987, 0.318, 0.180, 0.341, 0.059, -0.121, -0.884, -0.510],
    "flexibility": [0.360, 0.350, 0.510, 0.500, 0.310, 0.540, 0.320, 0.460, 0.470, 0.370,
                    0.300, 0.460, 0.510, 0.490, 0.530, 0.510, 0.440, 0.390, 0.310, 0.420],
    "helix": [1.42, 0.70, 1.01, 1.51, 1.13, 0.57, 1.00, 1.08, 1.16, 1.21,
              1.45, 0.67, 0.57, 1.11, 0.98, 0.77, 0.83, 1.06, 1.08, 0.69],
    "sheet": [0.83, 1.19, 0.54, 0.37, 1.38, 0.75, 0.87, 1.60, 0.74, 1.30,
              1.05, 0.89, 0.55, 1.10, 0.93, 0.75, 1.19, 1.70, 1.37, 1.47],
    "turn": [0.66, 1.19, 1.46, 0.74, 0.60, 1.56, 0.95, 0.47, 1.01, 0.59,
             0.60, 1.56, 1.52, 0.98, 0.95, 1.43, 0.96, 0.50, 0.96, 1.14],
    "bulkiness": [11.50, 13.46, 11.68, 13.57, 19.80, 3.40, 13.69, 21.40, 15.71, 21.40,
                  16.25, 12.82, 17.43, 14.45, 14.28, 9.47, 15.77, 21.57, 21.67, 18.03],
    "polarity": [8.1, 5.5, 13.0, 12.3, 5.2, 9.0, 10.4, 5.2, 11.3, 4.9,
                 5.7, 11.6, 8.0, 10.5, 10.5, 9.2, 8.6, 5.9, 5.4, 6.2],
}


def _table(values: list[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32)
    return np.append(arr, arr.mean())  # unknown residue = mean


SCALES: dict[str, np.ndarray] = {name: _table(v) for name, v in _RAW_SCALES.items()}
"""Raw scale values indexed by residue code (0-19 standard, 20 unknown)."""

SCALES_DIGEST = hashlib.sha256(np.stack(list(SCALES.values())).tobytes()).hexdigest()[:16]
"""Digest of the scale tables: a saved model names the tables it was trained with."""

# z-scored copies so that features share one range
_SCALE_MATRIX = np.stack([(t - t[:20].mean()) / t[:20].std() for t in SCALES.values()], axis=1)
assert len(STANDARD) == 20


def one_hot(codes: np.ndarray) -> np.ndarray:
    """(L, 21) float32 one-hot of residue codes; column 20 is the unknown residue."""
    out = np.zeros((codes.size, N_TOKENS), dtype=np.float32)
    out[np.arange(codes.size), codes] = 1.0
    return out


def scale_values(codes: np.ndarray, standardised: bool = True) -> np.ndarray:
    """(L, n_scales) per-residue scale values, z-scored over the 20 residues unless told otherwise."""
    if standardised:
        return _SCALE_MATRIX[codes]
    return np.stack([t[codes] for t in SCALES.values()], axis=1)


def window_means(x: np.ndarray, half_widths: list[int], starts: np.ndarray | None = None,
                 ends: np.ndarray | None = None) -> list[np.ndarray]:
    """Means of ``x`` (L, d) over windows [i - h, i + h] (truncated at the ends) for several ``h``.

    One cumulative sum serves every width, so each window costs O(L d) whatever its size. For several
    sequences concatenated, ``starts`` and ``ends`` give each row's sequence bounds, which windows do not cross.
    """
    x = np.asarray(x)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[:, None]
    n = x.shape[0]
    # counts (integer inputs) sum exactly in int32, with half the memory traffic of float64
    kind = np.int32 if x.dtype.kind in "iub" and n < 2 ** 31 else np.float64
    csum = np.zeros((n + 1, x.shape[1]), dtype=kind)
    np.cumsum(x, axis=0, dtype=kind, out=csum[1:])
    idx = np.arange(n)
    starts = 0 if starts is None else starts
    ends = n if ends is None else ends
    out = []
    for h in half_widths:
        lo = np.maximum(idx - h, starts)
        hi = np.minimum(idx + h + 1, ends)
        mean = ((csum[hi] - csum[lo]) / (hi - lo)[:, None]).astype(np.float32)
        out.append(mean[:, 0] if squeeze else mean)
    return out


def window_mean(x: np.ndarray, half_width: int) -> np.ndarray:
    """Mean of ``x`` (L, d) over the window [i - h, i + h], truncated at the ends, in O(L) by cumsum."""
    return window_means(x, [half_width])[0]


def entropy_windows(composition: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of each row of a window composition matrix (L, 21)."""
    p = np.clip(composition.astype(np.float64), 1e-12, 1.0)
    return (-(composition * np.log2(p)).sum(axis=1)).astype(np.float32)


@dataclass
class FeatureSpec:
    """Which hand-made features to compute; the defaults feed the ``gbdt`` family."""

    composition_windows: list[int] = field(default_factory=lambda: [7, 21, 61, 121])
    scale_windows: list[int] = field(default_factory=lambda: [5, 15, 41])
    entropy_windows: list[int] = field(default_factory=lambda: [15, 41])
    charge_windows: list[int] = field(default_factory=lambda: [15, 41])
    one_hot: bool = True
    position: bool = True

    def to_dict(self) -> dict:
        """The specification as saved in ``model.json`` (with the feature version and scale digest)."""
        return {"version": FEATURE_VERSION, "scales": list(SCALES), "scales_digest": SCALES_DIGEST, **asdict(self)}

    @classmethod
    def from_dict(cls, doc, where: str = "model.json") -> "FeatureSpec":
        """Rebuild a saved specification, refusing one this code cannot reproduce."""
        if not isinstance(doc, dict):
            raise ModelError(f"{where}: field 'features' must be an object")
        if doc.get("version") != FEATURE_VERSION:
            raise ModelError(f"{where}: features of version {doc.get('version')!r}; this idrkit computes version "
                             f"{FEATURE_VERSION} and cannot reproduce them")
        if doc.get("scales") != list(SCALES) or doc.get("scales_digest") != SCALES_DIGEST:
            raise ModelError(f"{where}: the model was trained with other physico-chemical scales than this idrkit's")
        spec = cls()
        for name in asdict(spec):
            if name not in doc:
                raise ModelError(f"{where}: field 'features.{name}' is missing")
            value, default = doc[name], getattr(spec, name)
            ok = isinstance(value, bool) if isinstance(default, bool) else (
                isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                                for v in value))
            if not ok:
                raise ModelError(f"{where}: field 'features.{name}' has the wrong type or value ({value!r})")
            setattr(spec, name, list(value) if isinstance(value, list) else value)
        return spec

    def names(self) -> list[str]:
        """Column names, in the order :func:`featurize` writes them."""
        aa = list(STANDARD) + ["X"]
        cols: list[str] = []
        if self.one_hot:
            cols += [f"res_{a}" for a in aa]
        for w in self.composition_windows:
            cols += [f"comp{w}_{a}" for a in aa]
        for w in self.scale_windows:
            cols += [f"{s}{w}" for s in SCALES]
        for w in self.entropy_windows:
            cols.append(f"entropy{w}")
        for w in self.charge_windows:
            cols += [f"ncpr{w}", f"fcr{w}"]
        if self.position:
            cols += ["rel_position", "dist_n", "dist_c", "log_length"]
        return cols


def featurize(sequence: str, spec: FeatureSpec | None = None) -> np.ndarray:
    """(L, n_features) float32 matrix of one sequence, columns as ``spec.names()``."""
    return featurize_many([sequence], spec)


def featurize_many(sequences: list[str], spec: FeatureSpec | None = None) -> np.ndarray:
    """Features of several sequences at once, their rows concatenated (windows stop at each sequence's ends).

    One pass of array operations for the whole list: no Python work per sequence beyond joining them.
    """
    spec = spec or FeatureSpec()
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    codes = encode("".join(sequences))
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    starts, ends = np.repeat(bounds[:-1], lengths), np.repeat(bounds[1:], lengths)
    oh = one_hot(codes)
    parts = []
    if spec.one_hot:
        parts.append(oh)
    comp_widths = sorted(set(spec.composition_windows) | set(spec.entropy_windows))
    comps = dict(zip(comp_widths, window_means(oh.astype(np.int8), [w // 2 for w in comp_widths], starts, ends)))
    for w in spec.composition_windows:
        parts.append(comps[w])
    parts += window_means(scale_values(codes), [w // 2 for w in spec.scale_windows], starts, ends)
    for w in spec.entropy_windows:
        parts.append(entropy_windows(comps[w])[:, None])
    charge = SCALES["charge"][codes]
    cq = np.stack([charge, np.abs(charge) >= 1], axis=1).astype(np.float32)
    parts += window_means(cq, [w // 2 for w in spec.charge_windows], starts, ends)
    if spec.position:
        idx = (np.arange(codes.size) - starts).astype(np.float32)
        n = ends - starts
        parts.append(np.stack([idx / np.maximum(n - 1, 1).astype(np.float32), np.log1p(idx),
                               np.log1p((n - 1).astype(np.float32) - idx), np.log(n).astype(np.float32)], axis=1))
    return np.concatenate(parts, axis=1).astype(np.float32)
