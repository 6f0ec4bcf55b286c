"""Residues, records, and the readers and writers of every file format idrkit speaks.

Input formats
-------------
``fasta``
    Plain FASTA: multi-line records, lower case, a trailing ``*`` and blank lines are accepted.
``labelled``
    Three-line FASTA: ``>id``, the sequence, then one label per residue (``1`` disordered, ``0`` ordered,
    ``-`` unknown). Detected per record inside a FASTA file: a record whose last line holds only ``0``,
    ``1`` and ``-`` carries labels.
``pickle``
    The competition pickle: a list of dicts with ``id``, ``sequence`` and ``label`` (list, string or numpy
    array of 0/1; -1 or ``-`` for unknown). Read with a restricted unpickler that admits only plain
    builtin containers and numpy arrays, because a pickle can run code when it is loaded.
``csv``
    The competition CSV ``proteinID,sequence,IDRs``; the ``IDRs`` column is optional.

Residues
--------
The 20 standard amino acids are encoded as themselves. Six rare letters are accepted: ``U``
(selenocysteine) is encoded as ``C`` and ``O`` (pyrrolysine) as ``K``, their closest standard residues;
the ambiguity codes ``B`` (D or N), ``Z`` (E or Q), ``J`` (I or L) and ``X`` (unknown) are encoded as
the unknown residue. Sequences keep their original letters in every output. Any other character is an
error naming the record and the 1-based position.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from .errors import InputError

STANDARD = "ACDEFGHIKLMNPQRSTVWY"
RARE = "BZJUOX"
UNKNOWN = len(STANDARD)  # index of the unknown residue in encodings
N_TOKENS = UNKNOWN + 1

_ENCODE = np.full(256, 255, dtype=np.uint8)
for _i, _aa in enumerate(STANDARD):
    _ENCODE[ord(_aa)] = _i
for _aa, _as in {"U": "C", "O": "K"}.items():
    _ENCODE[ord(_aa)] = STANDARD.index(_as)
for _aa in "BZJX":
    _ENCODE[ord(_aa)] = UNKNOWN

LABEL_CHARS = "01-"
_LABEL_LINE = re.compile(r"^[01\-]+$")


@dataclass
class Record:
    """One protein: id, sequence (upper case) and optional labels (1, 0, or -1 for unknown)."""

    id: str
    sequence: str
    labels: np.ndarray | None = None
    track: str = "pdb"  # which definition of disorder the labels follow: "pdb" or "nox"

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


def encode(sequence: str) -> np.ndarray:
    """Residue indices (0-19 standard, 20 unknown) of a validated upper-case sequence."""
    codes = _ENCODE[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]
    return codes


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
    """Labels as an int8 array of 1, 0 and -1 (unknown), checked against the sequence length."""
    if isinstance(raw, str):
        text = raw.strip()
        bad = [c for c in text if c not in LABEL_CHARS]
        if bad:
            pos = next(i for i, c in enumerate(text) if c not in LABEL_CHARS)
            raise InputError(
                f"{source}: record '{record_id}': label character {text[pos]!r} at position {pos + 1} "
                "is not one of 0, 1, -"
            )
        labels = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int8) - ord("0")
        labels[labels == ord("-") - ord("0")] = -1
    else:
        try:
            arr = np.asarray(raw)
            if arr.dtype.kind in "US":
                return parse_labels("".join(arr.astype(str).tolist()), length, record_id, source)
            labels = arr.astype(np.int64).ravel()
        except (TypeError, ValueError):
            raise InputError(f"{source}: record '{record_id}': labels are not a list of 0/1") from None
        if labels.size and not np.isin(labels, (-1, 0, 1)).all():
            raise InputError(
                f"{source}: record '{record_id}': labels must be 0, 1 or -1 (unknown), "
                f"found {sorted(set(labels.tolist()) - {-1, 0, 1})[:3]}"
            )
        labels = labels.astype(np.int8)
    if labels.size != length:
        raise InputError(
            f"{source}: record '{record_id}': {labels.size} labels for a sequence of {length} residues"
        )
    return labels


def labels_to_string(labels: np.ndarray) -> str:
    """The ``01-`` text form of a label array."""
    out = np.where(labels < 0, ord("-"), labels + ord("0")).astype(np.uint8)
    return out.tobytes().decode("ascii")


# ----------------------------------------------------------------------------------------------- readers


def detect_format(path: str | Path) -> str:
    """Input format from the file name, falling back to the first character of the file."""
    name = str(path).lower()
    if name.endswith((".pkl", ".pickle")):
        return "pickle"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".fasta", ".fa", ".faa", ".fas", ".fna", ".seq")):
        return "fasta"
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    if head.startswith(b">"):
        return "fasta"
    if head.startswith(b"\x80"):
        return "pickle"
    if head.lower().startswith(b"proteinid"):
        return "csv"
    raise InputError(f"{path}: cannot tell the format; use a .fasta, .csv or .pkl file name")


def _fasta_chunks(handle: IO[str], source: str) -> Iterator[tuple[str, list[str], int]]:
    header, lines, line_no, start = None, [], 0, 0
    for line_no, line in enumerate(handle, 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            if header is not None:
                yield header, lines, start
            header, lines, start = line[1:].strip(), [], line_no
        elif line.startswith(";"):
            continue
        else:
            if header is None:
                raise InputError(f"{source}: line {line_no}: sequence data before the first '>' header")
            lines.append(line)
    if header is not None:
        yield header, lines, start


def iter_fasta(path: str | Path, source: str | None = None) -> Iterator[Record]:
    """Stream the records of a plain or labelled FASTA file, one at a time."""
    source = source or str(path)
    with _open_text(path, source) as handle:
        for header, lines, line_no in _fasta_chunks(handle, source):
            rid = header.split()[0] if header.split() else ""
            if not rid:
                raise InputError(f"{source}: line {line_no}: header without an id")
            labels = None
            if len(lines) >= 2 and _LABEL_LINE.match(lines[-1]):
                labels, lines = lines[-1], lines[:-1]
            seq = clean_sequence("".join(lines), rid, source)
            yield Record(rid, seq, None if labels is None else parse_labels(labels, len(seq), rid, source))


@contextlib.contextmanager
def _open_text(path, source):
    try:
        handle = open(path, encoding="utf-8", newline=None)
    except OSError as exc:
        raise InputError(f"{source}: cannot open: {exc.strerror}") from None
    try:
        yield handle
    except UnicodeDecodeError:
        raise InputError(f"{source}: not a UTF-8 text file") from None
    finally:
        handle.close()


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits plain builtin containers and numpy arrays; refuses every other global."""

    SAFE_BUILTINS = {"list", "dict", "tuple", "set", "frozenset", "str", "int", "float", "bool",
                     "bytes", "bytearray", "complex"}
    SAFE_NUMPY = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module, name):
        if module == "builtins" and name in self.SAFE_BUILTINS:
            return super().find_class(module, name)
        if (module, name) in self.SAFE_NUMPY:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def iter_pickle(path: str | Path, source: str | None = None) -> Iterator[Record]:
    """Records of a competition pickle (a list of dicts with id, sequence and optional label)."""
    source = source or str(path)
    try:
        with open(path, "rb") as fh:
            data = _RestrictedUnpickler(fh).load()
    except OSError as exc:
        raise InputError(f"{source}: cannot open: {exc.strerror}") from None
    except pickle.UnpicklingError as exc:
        raise InputError(f"{source}: unsafe or invalid pickle: {exc}") from None
    except Exception as exc:  # any other failure inside pickle means a corrupt file
        raise InputError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, (list, tuple)):
        raise InputError(f"{source}: expected a list of records, found {type(data).__name__}")
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "sequence" not in item:
            raise InputError(f"{source}: item {i}: expected a dict with 'id' and 'sequence'")
        rid = str(item.get("id", f"protein_{i}"))
        if not isinstance(item["sequence"], str):
            raise InputError(f"{source}: record '{rid}': sequence is not a string")
        seq = clean_sequence(item["sequence"], rid, source)
        label = item.get("label", item.get("labels"))
        yield Record(rid, seq, None if label is None else parse_labels(label, len(seq), rid, source))


def iter_csv(path: str | Path, source: str | None = None) -> Iterator[Record]:
    """Records of a competition CSV ``proteinID,sequence[,IDRs]``."""
    source = source or str(path)
    with _open_text(path, source) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        cols = [h.strip() for h in header]
        if "proteinID" not in cols or "sequence" not in cols:
            raise InputError(f"{source}: the header must name proteinID and sequence columns, found {cols}")
        i_id, i_seq = cols.index("proteinID"), cols.index("sequence")
        i_lab = cols.index("IDRs") if "IDRs" in cols else None
        for row_no, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) != len(cols):
                raise InputError(f"{source}: line {row_no}: {len(row)} fields, expected {len(cols)}")
            rid = row[i_id].strip()
            seq = clean_sequence(row[i_seq], rid, source)
            labels = parse_labels(row[i_lab], len(seq), rid, source) if i_lab is not None else None
            yield Record(rid, seq, labels)


READERS = {"fasta": iter_fasta, "labelled": iter_fasta, "pickle": iter_pickle, "csv": iter_csv}


def iter_records(path: str | Path, fmt: str | None = None, check_duplicates: bool = True) -> Iterator[Record]:
    """Stream the records of any supported input file, refusing duplicate ids."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt not in READERS:
        raise InputError(f"{path}: unknown input format '{fmt}' (choose from {', '.join(READERS)})")
    seen: set[str] = set()
    for rec in READERS[fmt](path):
        if check_duplicates:
            if rec.id in seen:
                raise InputError(f"{path}: record '{rec.id}': duplicate id")
            seen.add(rec.id)
        yield rec


def read_records(path: str | Path, fmt: str | None = None, require_labels: bool = False) -> list[Record]:
    """All records of a file as a list; with ``require_labels`` every record must carry labels."""
    records = list(iter_records(path, fmt))
    if require_labels:
        for rec in records:
            if rec.labels is None:
                raise InputError(f"{path}: record '{rec.id}': no labels (a labelled file is needed here)")
    if not records:
        raise InputError(f"{path}: no records")
    return records


# ----------------------------------------------------------------------------------------------- writers

OUTPUT_FORMATS = ("tsv", "caid", "csv", "json", "fasta")


@contextlib.contextmanager
def atomic_path(path: str | Path, directory: bool = False):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def _fmt_scores(scores: np.ndarray) -> list[str]:
    # four significant digits keep the ranking of very small or very large probabilities
    return [f"{s:.4g}" for s in scores.tolist()]


def caid_text(p: Prediction) -> str:
    """One protein in the CAID format: ``>id`` then position, residue, score and 0/1 call."""
    scores = _fmt_scores(p.scores)
    body = "".join(f"{i}\t{aa}\t{s}\t{c}\n"
                   for i, (aa, s, c) in enumerate(zip(p.sequence, scores, p.calls.tolist()), 1))
    return f">{p.id}\n{body}"


def safe_filename(rid: str) -> str:
    """A file name for a protein id (characters outside ``[A-Za-z0-9._-]`` become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", rid)


def prediction_dict(p: Prediction) -> dict:
    """A JSON-ready dict of one prediction."""
    return {"id": p.id, "sequence": p.sequence, "scores": [float(f"{s:.4g}") for s in p.scores.tolist()],
            "calls": "".join(map(str, p.calls.tolist())),
            "regions": [{"start": s, "end": e} for s, e in p.regions]}


def record_text(p: Prediction, fmt: str) -> str:
    """The text of one protein in an output format (for ``caid``, the content of its own file).

    tsv: per residue id, 1-based position, residue, score, 0/1 call; csv: the competition's
    proteinID, sequence, IDRs; json: one object; fasta: the predicted disordered segments.
    """
    if fmt == "tsv":
        scores = _fmt_scores(p.scores)
        return "".join(f"{p.id}\t{i}\t{aa}\t{s}\t{c}\n"
                       for i, (aa, s, c) in enumerate(zip(p.sequence, scores, p.calls.tolist()), 1))
    if fmt == "caid":
        return caid_text(p)
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([p.id, p.sequence, "".join(map(str, p.calls.tolist()))])
        return buf.getvalue()
    if fmt == "json":
        return json.dumps(prediction_dict(p))
    if fmt == "fasta":
        out = []
        for s, e in p.regions:
            mean = float(np.mean(p.scores[s - 1:e]))
            out.append(f">{p.id}|{s}-{e} mean_score={mean:.3f}\n{p.sequence[s - 1:e]}\n")
        return "".join(out)
    raise InputError(f"unknown output format '{fmt}' (choose from {', '.join(OUTPUT_FORMATS)})")


def header_text(fmt: str, meta: dict) -> str:
    """The text an output file starts with (column names, metadata)."""
    if fmt == "tsv":
        head = " ".join(f"{k}={v}" for k, v in meta.items())
        return (f"# {head}\n" if head else "") + "id\tposition\tresidue\tscore\tcall\n"
    if fmt == "csv":
        return "proteinID,sequence,IDRs\n"
    if fmt == "json":
        return '{"meta": ' + json.dumps(meta) + ', "proteins": [\n'
    return ""


class PredictionWriter:
    """Writes predictions into ``PATH.partial`` and moves it to ``PATH`` when closed.

    After every block it appends the ids written and the file size to ``PATH.partial.progress``, so that
    an interrupted run can resume (``resume=True``): the partial file is cut back to the last complete
    block, and the ids already written are in :attr:`done`. On :meth:`abort` both are removed.
    """

    def __init__(self, path: str | Path, fmt: str, meta: dict | None = None, resume: bool = False):
        if fmt not in OUTPUT_FORMATS:
            raise InputError(f"unknown output format '{fmt}' (choose from {', '.join(OUTPUT_FORMATS)})")
        self.path, self.fmt = Path(path), fmt
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.progress = self.path.with_name(self.path.name + ".partial.progress")
        self.done: set[str] = set()
        self.count = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        offset = 0
        if resume and self.progress.exists() and self.partial.exists():
            for line in self.progress.read_text().splitlines():
                rid, _, off = line.rpartition("\t")
                if rid:
                    self.done.add(rid)
                    offset = int(off)
        else:
            self._remove_partial()
        self.count = len(self.done)
        if fmt == "caid":
            self.partial.mkdir(exist_ok=True)
            self._fh = None
        else:
            self._fh = open(self.partial, "a+b")
            if self.done:
                self._fh.truncate(offset)
                self._fh.seek(offset)
            else:
                self._fh.truncate(0)
                self._fh.write(header_text(fmt, meta or {}).encode())
        self._prog = open(self.progress, "a" if self.done else "w")

    def _remove_partial(self) -> None:
        if self.partial.is_dir():
            shutil.rmtree(self.partial)
        elif self.partial.exists():
            self.partial.unlink()
        if self.progress.exists():
            self.progress.unlink()

    def write_block(self, items: list[tuple[str, str]]) -> None:
        """Write (id, text) pairs of one block (texts from :func:`record_text`) and record them."""
        if self.fmt == "caid":
            for rid, text in items:
                name = safe_filename(rid)
                target = self.partial / f"{name}.caid"
                if target.exists() and rid not in self.done:
                    raise InputError(f"record '{rid}': two ids map to the same CAID file name {name}.caid")
                tmp = self.partial / f".{name}.tmp"
                tmp.write_text(text)
                os.replace(tmp, target)
        else:
            parts = []
            for rid, text in items:
                if self.fmt == "json" and self.count + len(parts) > 0:
                    text = ",\n" + text
                parts.append(text)
            self._fh.write("".join(parts).encode())
            self._fh.flush()
        self.count += len(items)
        offset = self._fh.tell() if self._fh else 0
        self._prog.write("".join(f"{rid}\t{offset}\n" for rid, _ in items))
        self._prog.flush()
        self.done.update(rid for rid, _ in items)

    def close(self) -> int:
        """Finish the file and move it into place; returns how many proteins it holds."""
        if self._fh:
            if self.fmt == "json":
                self._fh.write(b"\n]}\n")
            self._fh.close()
        self._prog.close()
        if self.path.is_dir():
            shutil.rmtree(self.path)
        os.replace(self.partial, self.path)
        self.progress.unlink()
        return self.count

    def abort(self, keep: bool = False) -> None:
        """Stop; keep the partial output for ``--resume`` or remove it."""
        if self._fh:
            self._fh.close()
        self._prog.close()
        if not keep:
            self._remove_partial()


def write_predictions(preds: Iterable[Prediction], path: str | Path, fmt: str, meta: dict | None = None) -> int:
    """Write predictions in one of :data:`OUTPUT_FORMATS`; the file appears only when all are written."""
    writer = PredictionWriter(path, fmt, meta)
    try:
        for p in preds:
            writer.write_block([(p.id, record_text(p, fmt))])
    except BaseException:
        writer.abort()
        raise
    return writer.close()


# ------------------------------------------------------------------------------- reading predictions back


def _parse_caid_text(text: str, source: str, out: dict[str, np.ndarray]) -> None:
    rid, rows = None, []

    def flush():
        if rid is not None:
            out[rid] = np.array(rows, dtype=np.float64)

    for line_no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            flush()
            rid, rows = line[1:].split()[0], []
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if rid is None or len(parts) < 3:
            raise InputError(f"{source}: line {line_no}: expected 'position residue score [call]'")
        try:
            rows.append(float(parts[2]) if parts[2] not in ("", "nan") else float(parts[3]))
        except (ValueError, IndexError):
            raise InputError(f"{source}: line {line_no}: score {parts[2]!r} is not a number") from None
    flush()


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Scores by protein id from any prediction format idrkit writes (CSV gives the 0/1 calls)."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    if path.is_dir():
        files = sorted(path.glob("*.caid"))
        if not files:
            raise InputError(f"{path}: a folder with no .caid files")
        for f in files:
            _parse_caid_text(f.read_text(), str(f), out)
        return out
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".csv"):
        for rec in iter_csv(path):
            if rec.labels is None:
                raise InputError(f"{path}: no IDRs column to evaluate")
            out[rec.id] = rec.labels.astype(np.float64)
        return out
    text = path.read_text()
    if name.endswith(".json"):
        try:
            data = json.loads(text)
            for item in data["proteins"] if isinstance(data, dict) else data:
                out[str(item["id"])] = np.asarray(item["scores"], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not an idrkit JSON prediction file ({exc})") from None
        return out
    if name.endswith(".caid") or text.lstrip().startswith(">"):
        _parse_caid_text(text, str(path), out)
        return out
    # per-residue TSV
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    if not lines or lines[0].split("\t")[:4] != ["id", "position", "residue", "score"]:
        raise InputError(f"{path}: not a prediction file (tsv, caid, csv or json)")
    rows: dict[str, list[float]] = {}
    for line_no, line in enumerate(lines[1:], 2):
        parts = line.split("\t")
        try:
            rows.setdefault(parts[0], []).append(float(parts[3]))
        except (ValueError, IndexError):
            raise InputError(f"{path}: row {line_no}: bad score") from None
    return {k: np.array(v) for k, v in rows.items()}
