"""Text of every output format, built from :class:`~idrkit.records.Prediction` values.

Per-residue rows are assembled with array operations (scores rounded to four significant digits by a
lookup of the distinct rounded values, then one join), not a Python loop per residue.

``tsv``   per residue: id, 1-based position, residue, score, 0/1 call (a ``# key=value`` header line)
``csv``   the competition's ``proteinID,sequence,IDRs`` (ids quoted where CSV needs it)
``caid``  one file per protein: ``>id`` then position, residue, score, call
``json``  ``{"meta": {...}, "proteins": [{"id", "sequence", "scores", "calls", "regions"}, ...]}``
``fasta`` the predicted disordered segments, ``>id|start-end mean_score=...``
``regions`` one row per predicted region: id, start, end (1-based, inclusive), length, mean score, track
``summary`` one row per protein: id, length, fraction disordered, regions, longest region, mean score, track
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..records import Prediction, Record, labels_to_string

OUTPUT_FORMATS = ("tsv", "caid", "csv", "json", "fasta", "regions", "summary")
SUFFIX_FORMATS = {"tsv": "tsv", "csv": "csv", "json": "json", "fasta": "fasta", "fa": "fasta", "caid": "caid"}
TSV_COLUMNS = ("id", "position", "residue", "score", "call")
REGION_COLUMNS = ("id", "start", "end", "length", "mean_score", "track")
SUMMARY_COLUMNS = ("id", "length", "fraction_disordered", "regions", "longest_region", "mean_score", "track")


def format_scores(scores: np.ndarray) -> np.ndarray:
    """Scores as text with four significant digits (``'%.4g'``), as an object array of str.

    Scores are rounded to four significant digits with array operations and only the distinct rounded
    values (a few thousand at most) are formatted by Python.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(s)))
    # products s * 10**k stay exact for float32 scores down to about 1e-8; others are formatted one by one
    exact = np.isfinite(mag) & (mag >= -8) & (mag <= 8)
    scale = 10.0 ** (3 - np.where(exact, mag, 0))
    key = np.where(exact, np.rint(s * scale) / scale, 0.0)
    uniq, inverse = np.unique(key[exact], return_inverse=True)
    out = np.empty(s.size, dtype=object)
    out[exact] = np.array([f"{v:.4g}" for v in uniq.tolist()], dtype=object)[inverse]
    rest = np.flatnonzero(~exact)
    out[rest] = [f"{v:.4g}" for v in s[rest].tolist()]
    return out


def _as_bytes_column(values: np.ndarray) -> np.ndarray:
    """A column of byte strings as a (N, width) uint8 matrix, NUL-padded."""
    values = np.asarray(values, dtype=np.bytes_)
    width = max(values.dtype.itemsize, 1)
    return values.view(np.uint8).reshape(values.size, width) if values.size else np.zeros((0, width), np.uint8)


def _calls_text(calls: np.ndarray) -> str:
    return (np.asarray(calls, dtype=np.uint8) + ord("0")).tobytes().decode("ascii")


def residue_rows(preds: Sequence[Prediction], with_id: bool = True) -> str:
    """Per-residue rows ``[id\\t]position\\tresidue\\tscore\\tcall\\n`` of several proteins at once.

    The columns are laid side by side as NUL-padded byte matrices and the padding is dropped in one pass:
    no Python work per residue.
    """
    if not preds:
        return ""
    lengths = np.array([len(p) for p in preds])
    n = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    tab = np.full((n, 1), ord("\t"), np.uint8)
    cols = []
    if with_id:
        ids = np.array([p.id.encode("utf-8") for p in preds], dtype=np.bytes_)
        cols += [_as_bytes_column(np.repeat(ids, lengths)), tab]
    positions = np.arange(1, int(lengths.max()) + 1).astype(np.bytes_)  # one string per distinct position
    cols += [_as_bytes_column(positions[np.arange(n) - starts]), tab,
             np.frombuffer("".join(p.sequence for p in preds).encode("ascii"), np.uint8)[:, None], tab]
    scores = format_scores(np.concatenate([p.scores for p in preds])).astype(np.bytes_)
    cols += [_as_bytes_column(scores), tab,
             (np.concatenate([p.calls for p in preds]).astype(np.uint8) + ord("0"))[:, None],
             np.full((n, 1), ord("\n"), np.uint8)]
    table = np.hstack(cols).ravel()
    return table[table != 0].tobytes().decode("utf-8")


def caid_text(p: Prediction) -> str:
    """One protein in the CAID format: ``>id`` then position, residue, score and 0/1 call."""
    return f">{p.id}\n" + residue_rows([p], with_id=False)


def json_text(p: Prediction) -> str:
    """One protein as a JSON object (scores with four significant digits)."""
    scores = format_scores(p.scores)
    # as Python's json writes these floats (NaN: residues a model gave no score, e.g. an LLM's missing answer)
    for text, as_json in (("0", "0.0"), ("1", "1.0"), ("nan", "NaN")):
        scores[scores == text] = as_json
    regions = ", ".join(f'{{"start": {s}, "end": {e}}}' for s, e in p.regions)
    return (f'{{"id": {json.dumps(p.id)}, "sequence": "{p.sequence}", "scores": [{", ".join(scores.tolist())}], '
            f'"calls": "{_calls_text(p.calls)}", "regions": [{regions}]}}')


def csv_row(cells: Sequence[str]) -> str:
    """One CSV line, quoted where CSV needs it."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def idr_fasta_text(p: Prediction) -> str:
    """The predicted disordered segments of one protein as FASTA records."""
    return "".join(f">{p.id}|{s}-{e} mean_score={float(np.mean(p.scores[s - 1:e])):.3f}\n{p.sequence[s - 1:e]}\n"
                   for s, e in p.regions)


def region_rows(p: Prediction) -> str:
    """One tab-separated row per predicted region of a protein."""
    return "".join(f"{p.id}\t{s}\t{e}\t{e - s + 1}\t{float(np.mean(p.scores[s - 1:e])):.4f}\t{p.track}\n"
                   for s, e in p.regions)


def summary_row(p: Prediction) -> str:
    """One tab-separated row summarising a protein's prediction."""
    longest = max((e - s + 1 for s, e in p.regions), default=0)
    fraction = float(np.count_nonzero(p.calls)) / max(len(p), 1)
    return (f"{p.id}\t{len(p)}\t{fraction:.4f}\t{len(p.regions)}\t{longest}\t{float(np.mean(p.scores)):.4f}\t"
            f"{p.track}\n")


def safe_filename(rid: str) -> str:
    """A file name for a protein id (characters outside ``[A-Za-z0-9._-]`` become ``_``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", rid)
    return "_" + name if name.startswith(".") else name


class OutputFormat:
    """How one output format starts, writes a block of predictions and ends."""

    def __init__(self, name: str):
        if name not in OUTPUT_FORMATS:
            raise InputError(f"unknown output format '{name}' (choose from {', '.join(OUTPUT_FORMATS)})")
        self.name = name
        self.per_file = name == "caid"

    def header(self, meta: dict) -> str:
        """The text a file starts with (column names, metadata)."""
        columns = {"tsv": TSV_COLUMNS, "regions": REGION_COLUMNS, "summary": SUMMARY_COLUMNS}.get(self.name)
        if columns:
            head = " ".join(f"{k}={v}" for k, v in meta.items())
            return (f"# {head}\n" if head else "") + "\t".join(columns) + "\n"
        if self.name == "csv":
            return "proteinID,sequence,IDRs\n"
        if self.name == "json":
            return '{"meta": ' + json.dumps(meta) + ', "proteins": [\n'
        return ""

    def block(self, preds: Sequence[Prediction], first: bool) -> str:
        """The text of a block of predictions; ``first`` when nothing was written before it."""
        if self.name == "tsv":
            return residue_rows(preds)
        if self.name == "csv":
            return "".join(csv_row([p.id, p.sequence, _calls_text(p.calls)]) for p in preds)
        if self.name == "json":
            text = ",\n".join(json_text(p) for p in preds)
            return text if first or not text else ",\n" + text
        if self.name == "fasta":
            return "".join(idr_fasta_text(p) for p in preds)
        if self.name == "regions":
            return "".join(region_rows(p) for p in preds)
        if self.name == "summary":
            return "".join(summary_row(p) for p in preds)
        raise InputError("--format caid writes one file per protein: give a folder with -o")

    def footer(self) -> str:
        return "\n]}\n" if self.name == "json" else ""

    def text(self, preds: Sequence[Prediction], meta: dict) -> str:
        """A whole output in memory (the HTTP API)."""
        return self.header(meta) + self.block(preds, True) + self.footer()


def output_format(path: str | None, fmt: str | None) -> OutputFormat:
    """The format asked for, else the one the output name's extension names, else tsv."""
    if fmt:
        return OutputFormat(fmt)
    suffix = (path or "").rsplit(".", 1)[-1].lower() if "." in (path or "") else ""
    return OutputFormat(SUFFIX_FORMATS.get(suffix, "tsv"))


def labelled_fasta_text(records: Sequence[Record]) -> str:
    """Records in the three-line labelled FASTA format (records without labels get two lines)."""
    return "".join(f">{r.id}\n{r.sequence}\n" + ("" if r.labels is None else labels_to_string(r.labels) + "\n")
                   for r in records)


def cell_text(v) -> str:
    """A table cell: floats with four decimals, anything else as text."""
    if isinstance(v, float):
        return "nan" if np.isnan(v) else f"{v:.4f}"
    return str(v)


def table_text(columns: Sequence[str], rows: Sequence[dict]) -> str:
    """A tab-separated table with a header line."""
    return "\t".join(columns) + "\n" + "".join("\t".join(cell_text(r.get(c, "")) for c in columns) + "\n"
                                               for r in rows)
