"""Reading prediction files back (for ``idrkit evaluate``): scores and, where the file has them, calls.

TSV (``score`` and ``call`` columns), CAID files or folders (score and state), the competition CSV
(``IDRs``: calls only, which then also serve as scores) and idrkit's JSON (``scores`` and ``calls``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .readers import iter_csv


@dataclass
class PredictedResidues:
    """The scores of one protein from a prediction file, its 0/1 calls and sequence when the file holds them."""

    scores: np.ndarray
    calls: np.ndarray | None = None
    sequence: str | None = None


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number") from None


def _parse_caid_text(text: str, source: str, out: dict[str, PredictedResidues]) -> None:
    rid, scores, calls, residues = None, [], [], []

    def flush():
        if rid is not None:
            out[rid] = PredictedResidues(np.array(scores, dtype=np.float64),
                                         np.array(calls, dtype=np.uint8) if len(calls) == len(scores) else None,
                                         "".join(residues))

    for line_no, line in enumerate(text.lstrip("\ufeff").split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            flush()
            words = line[1:].split()
            if not words:
                raise InputError(f"{source}: line {line_no}: header without an id")
            rid, scores, calls, residues = words[0], [], [], []
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if rid is None or len(parts) < 3:
            raise InputError(f"{source}: line {line_no}: expected 'position residue score [call]'")
        where = f"{source}: line {line_no}"
        residues.append(parts[1])
        if parts[2] not in ("", "nan"):
            scores.append(_number(parts[2], where))
        elif len(parts) > 3:
            scores.append(_number(parts[3], where))  # a state-only file: the state is the score
        else:
            raise InputError(f"{where}: no score")
        if len(parts) > 3 and parts[3] in ("0", "1"):
            calls.append(int(parts[3]))
    flush()


def _read_tsv(path: Path, text: str) -> dict[str, PredictedResidues]:
    lines = _table_lines(text)
    if not lines or lines[0].split("\t")[:4] != ["id", "position", "residue", "score"]:
        raise InputError(f"{path}: not a prediction file (tsv, caid, csv or json)")
    has_calls = lines[0].split("\t")[4:5] == ["call"]
    scores: dict[str, list[float]] = {}
    calls: dict[str, list[int]] = {}
    residues: dict[str, list[str]] = {}
    for line_no, line in enumerate(lines[1:], 2):
        parts = line.split("\t")
        if len(parts) < 4:
            raise InputError(f"{path}: row {line_no}: expected id, position, residue, score")
        scores.setdefault(parts[0], []).append(_number(parts[3], f"{path}: row {line_no}"))
        residues.setdefault(parts[0], []).append(parts[2])
        if has_calls:
            if len(parts) < 5 or parts[4] not in ("0", "1"):
                raise InputError(f"{path}: row {line_no}: the call is not 0 or 1")
            calls.setdefault(parts[0], []).append(int(parts[4]))
    return {k: PredictedResidues(np.array(v), np.array(calls[k], dtype=np.uint8) if has_calls else None,
                                 "".join(residues[k])) for k, v in scores.items()}


def _table_lines(text: str) -> list[str]:
    """The non-empty lines of a table, less the ``#`` comment lines before its column names (an id may start
    with ``#``)."""
    lines = [ln.rstrip("\r") for ln in text.lstrip("\ufeff").split("\n")]
    lines = [ln for ln in lines if ln]
    first = next((i for i, ln in enumerate(lines) if not ln.startswith("#")), len(lines))
    return lines[first:]


def _read_json(path: Path, text: str) -> dict[str, PredictedResidues]:
    out = {}
    try:
        data = json.loads(text)
        for item in data["proteins"] if isinstance(data, dict) else data:
            calls = item.get("calls")
            scores = np.asarray(item["scores"], dtype=np.float64)
            if calls is not None:
                calls = np.frombuffer(str(calls).encode("ascii"), dtype=np.uint8) - ord("0")
                if calls.shape != scores.shape or (calls > 1).any():
                    raise ValueError("calls")
            out[str(item["id"])] = PredictedResidues(scores, calls, item.get("sequence"))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeEncodeError) as exc:
        raise InputError(f"{path}: not an idrkit JSON prediction file ({type(exc).__name__})") from None
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from None


def read_predictions(path: str | Path) -> dict[str, PredictedResidues]:
    """Scores (and calls, where the file has them) by protein id from any format idrkit writes."""
    path = Path(path)
    out: dict[str, PredictedResidues] = {}
    if path.is_dir():
        files = sorted(path.glob("*.caid"))
        if not files:
            raise InputError(f"{path}: a folder with no .caid files")
        for f in files:
            _parse_caid_text(_read_text(f), str(f), out)
        return out
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".csv"):
        for rec in iter_csv(path):
            if rec.labels is None:
                raise InputError(f"{path}: no IDRs column to evaluate")
            if (rec.labels < 0).any():
                raise InputError(f"{path}: record '{rec.id}': a '-' in the IDRs column is not a call")
            out[rec.id] = PredictedResidues(rec.labels.astype(np.float64), rec.labels.astype(np.uint8), rec.sequence)
        return out
    text = _read_text(path)
    if name.endswith(".json"):
        return _read_json(path, text)
    if name.endswith(".caid") or text.lstrip("\ufeff").lstrip().startswith(">"):
        _parse_caid_text(text, str(path), out)
        return out
    return _read_tsv(path, text)


@dataclass
class ProteomeSummary:
    """Per protein, the fraction of residues called; and the lengths of the regions (or, from a summary file,
    the longest region of each protein)."""

    fractions: np.ndarray
    region_lengths: np.ndarray
    longest_only: bool


def read_proteome(path: str | Path) -> ProteomeSummary:
    """Fractions called and region lengths from a per-residue prediction file or an ``idrkit`` summary file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    text = _read_text(path)
    lines = _table_lines(text)
    head = lines[0].split("\t") if lines else []
    if head[:3] == ["id", "length", "fraction_disordered"]:
        rows = [ln.split("\t") for ln in lines[1:]]
        try:
            return ProteomeSummary(np.array([float(r[2]) for r in rows]), np.array([int(r[4]) for r in rows]), True)
        except (ValueError, IndexError):
            raise InputError(f"{path}: not an idrkit summary file (a row without its numbers)") from None
    preds = read_predictions(path)
    if any(p.calls is None for p in preds.values()):
        raise InputError(f"{path}: the file has no 0/1 calls (use an idrkit per-residue TSV, JSON or CAID output, "
                         "or a summary file)")
    from ..regions import runs

    fractions, lengths = [], []
    for p in preds.values():
        fractions.append(float(np.mean(p.calls)) if p.calls.size else 0.0)
        starts, ends = runs(p.calls.astype(bool))
        lengths += (ends - starts).tolist()
    return ProteomeSummary(np.array(fractions), np.array(lengths, dtype=np.int64), False)
