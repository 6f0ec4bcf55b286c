"""The values that flow through idrkit: the residue alphabet, :class:`Record` and :class:`Prediction`.

Residues
--------
The 20 standard amino acids are encoded as themselves. Six rare letters are accepted: ``U``
(selenocysteine) is encoded as ``C`` and ``O`` (pyrrolysine) as ``K``, their closest standard residues;
the ambiguity codes ``B`` (D or N), ``Z`` (E or Q), ``J`` (I or L) and ``X`` (unknown) are encoded as
the unknown residue. Sequences keep their original letters in every output. Any other character is an
error naming the record and the 1-based position.

Labels are int8 arrays of 1 (disordered), 0 (ordered) and -1 (unknown); soft teacher labels are floats.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

STANDARD = "ACDEFGHIKLMNPQRSTVWY"
RARE = "BZJUOX"
UNKNOWN = len(STANDARD)  # index of the unknown residue in encodings
N_TOKENS = UNKNOWN + 1
LABEL_CHARS = "01-"
MAX_ID_LENGTH = 1000

TRACKS = ("pdb", "nox", "binding", "linker", "plddt")
"""What a model's outputs can predict: disorder under the Disorder-PDB (``pdb``) or Disorder-NOX (``nox``)
definition, binding regions (``binding``), linker regions (``linker``), and a predicted AlphaFold pLDDT
(``plddt``, 0-100; its calls mark residues of low confidence, below the threshold times 100)."""
SCALED_TRACKS = {"plddt": 100.0}  # outputs given on another scale than [0, 1]

_ENCODE = np.full(256, 255, dtype=np.uint8)
for _i, _aa in enumerate(STANDARD):
    _ENCODE[ord(_aa)] = _i
for _aa, _as in {"U": "C", "O": "K"}.items():
    _ENCODE[ord(_aa)] = STANDARD.index(_as)
for _aa in "BZJX":
    _ENCODE[ord(_aa)] = UNKNOWN


@dataclass
class Record:
    """One protein: id, sequence (upper case) and optional labels (1, 0, or -1 for unknown)."""

    id: str
    sequence: str
    labels: np.ndarray | None = None
    track: str = "pdb"  # what the labels mean: one of TRACKS, or "teacher" (a teacher's soft scores)

    def __len__(self) -> int:
        return len(self.sequence)


@dataclass
class Prediction:
    """Per-residue disorder scores of one protein, their 0/1 calls and the regions they form."""

    id: str
    sequence: str
    scores: np.ndarray
    calls: np.ndarray
    regions: list[tuple[int, int]] = field(default_factory=list)
    track: str = "pdb"

    def __len__(self) -> int:
        return len(self.sequence)


def encode(sequence: str) -> np.ndarray:
    """Residue indices (0-19 standard, 20 unknown) of a validated upper-case sequence."""
    return _ENCODE[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]


def check_id(record_id: str, source: str = "input") -> str:
    """A protein id as given, refused when empty, too long or holding a control character (tab, newline)."""
    if not record_id:
        raise InputError(f"{source}: a record has an empty id")
    if len(record_id) > MAX_ID_LENGTH:
        raise InputError(f"{source}: record '{record_id[:40]}...': id longer than {MAX_ID_LENGTH} characters")
    # control characters, and line or paragraph separators, would break the line-based output formats
    bad = next((c for c in record_id if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise InputError(f"{source}: record {record_id!r}: id holds the control character {bad!r}")
    return record_id


def clean_sequence(raw: str, record_id: str, source: str = "input") -> str:
    """Upper-case a sequence, drop white space and one trailing ``*``, and check every residue."""
    seq = "".join(raw.split()).upper()
    if seq.endswith("*"):
        seq = seq[:-1]
    if not seq:
        raise InputError(f"{source}: record '{record_id}': empty sequence")
    try:
        data = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        pos = next(i for i, c in enumerate(seq) if ord(c) > 127)
        raise InputError(
            f"{source}: record '{record_id}': invalid character {seq[pos]!r} at position {pos + 1}"
        ) from None
    bad = np.flatnonzero(_ENCODE[data] == 255)
    if bad.size:
        pos = int(bad[0])
        raise InputError(
            f"{source}: record '{record_id}': invalid character {seq[pos]!r} at position {pos + 1} "
            f"(allowed: the 20 standard residues and {', '.join(RARE)})"
        )
    return seq


def parse_labels(raw, length: int, record_id: str, source: str = "input") -> np.ndarray:
    """Labels as an int8 array of 1, 0 and -1 (unknown), checked against the sequence length.

    Text takes ``0``, ``1`` and ``-``; lists and arrays take exactly 0, 1 and -1 (0.5 or True are refused).
    """
    if isinstance(raw, str):
        text = raw.strip()
        pos = next((i for i, c in enumerate(text) if c not in LABEL_CHARS), None)
        if pos is not None:
            raise InputError(
                f"{source}: record '{record_id}': label character {text[pos]!r} at position {pos + 1} "
                "is not one of 0, 1, -"
            )
        labels = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int8) - ord("0")
        labels[labels == ord("-") - ord("0")] = -1
    else:
        if isinstance(raw, (list, tuple)) and len(raw) > 4 * max(length, 1):
            raise InputError(f"{source}: record '{record_id}': {len(raw)} labels for a sequence of {length} residues")
        try:
            arr = np.asarray(raw)
        except (TypeError, ValueError):
            raise InputError(f"{source}: record '{record_id}': labels are not a list of 0/1") from None
        if arr.dtype.kind in "US":
            return parse_labels("".join(arr.astype(str).ravel().tolist()), length, record_id, source)
        if arr.dtype.kind not in "iuf" or arr.ndim != 1:
            raise InputError(f"{source}: record '{record_id}': labels are not a flat list of 0, 1 or -1")
        if arr.size and not np.isin(arr, (-1, 0, 1)).all():
            odd = sorted(set(arr[~np.isin(arr, (-1, 0, 1))].tolist()))[:3]
            raise InputError(f"{source}: record '{record_id}': labels must be 0, 1 or -1 (unknown), found {odd}")
        labels = arr.astype(np.int8)
    if labels.size != length:
        raise InputError(
            f"{source}: record '{record_id}': {labels.size} labels for a sequence of {length} residues"
        )
    return labels


def labels_to_string(labels: np.ndarray) -> str:
    """The ``01-`` text form of a label array."""
    out = np.where(labels < 0, ord("-"), labels + ord("0")).astype(np.uint8)
    return out.tobytes().decode("ascii")
