"""Readers of every input format, from a path, an open handle or text.

``fasta``
    Plain FASTA: multi-line records, lower case, a trailing ``*`` and blank lines are accepted.
``labelled``
    Three-line FASTA: ``>id``, the sequence, then one label per residue (``1`` disordered, ``0`` ordered,
    ``-`` unknown). Detected per record inside a FASTA file: a record whose last line holds only ``0``,
    ``1`` and ``-`` carries labels.
``pickle``
    The competition pickle: a list of dicts with ``id``, ``sequence`` and ``label`` (list, string or numpy
    array of 0/1; -1 or ``-`` for unknown). Read with a restricted unpickler that admits only plain
    builtin containers and numpy arrays (a pickle can run code when it is loaded), from memory, with
    every array it builds bounded by the size of the file.
``csv``
    The competition CSV ``proteinID,sequence,IDRs``; the ``IDRs`` column is optional.

A UTF-8 byte-order mark at the start of a text file is skipped.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import pickle
import re
from pathlib import Path
from typing import IO, Iterator, Union

import numpy as np

from ..errors import InputError
from ..records import Record, check_id, clean_sequence, parse_labels

Source = Union[str, Path, IO]
_LABEL_LINE = re.compile(r"^[01\-]+$")
FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fas", ".fna", ".seq")


def detect_format(path: str | Path) -> str:
    """Input format from the file name, falling back to the first characters of the file."""
    name = str(path).lower()
    if name.endswith((".pkl", ".pickle")):
        return "pickle"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(FASTA_SUFFIXES):
        return "fasta"
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from None
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b">"):
        return "fasta"
    if head.startswith(b"\x80"):
        return "pickle"
    if head.lower().startswith(b"proteinid"):
        return "csv"
    raise InputError(f"{path}: cannot tell the format; use a .fasta, .csv or .pkl file name")


def source_name(source: Source, name: str | None = None) -> str:
    """How messages name a source: the given name, a path, or the handle's name."""
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return str(getattr(source, "name", "input"))


@contextlib.contextmanager
def open_text(source: Source, name: str):
    """A text handle over a path or an open handle; decoding errors become one clear error."""
    if isinstance(source, (str, Path)):
        try:
            handle = open(source, encoding="utf-8-sig", newline=None)
        except OSError as exc:
            raise InputError(f"{name}: cannot open: {exc.strerror}") from None
        close = True
    else:
        handle, close = source, False
    try:
        yield handle
    except UnicodeDecodeError:
        raise InputError(f"{name}: not a UTF-8 text file") from None
    finally:
        if close:
            handle.close()


def _lines(handle: IO[str]) -> Iterator[str]:
    for i, line in enumerate(handle):
        yield line.lstrip("\ufeff") if i == 0 else line


def _fasta_chunks(handle: IO[str], name: str) -> Iterator[tuple[str, list[str], int]]:
    header, lines, start = None, [], 0
    for line_no, line in enumerate(_lines(handle), 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            if header is not None:
                yield header, lines, start
            header, lines, start = line[1:].strip(), [], line_no
        else:
            if header is None:
                raise InputError(f"{name}: line {line_no}: sequence data before the first '>' header")
            lines.append(line)
    if header is not None:
        yield header, lines, start


def iter_fasta(source: Source, name: str | None = None) -> Iterator[Record]:
    """Stream the records of a plain or labelled FASTA source, one at a time."""
    name = source_name(source, name)
    with open_text(source, name) as handle:
        for header, lines, line_no in _fasta_chunks(handle, name):
            words = header.split()
            if not words:
                raise InputError(f"{name}: line {line_no}: header without an id")
            rid = check_id(words[0], name)
            labels = None
            if len(lines) >= 2 and _LABEL_LINE.match(lines[-1]):
                labels, lines = lines[-1], lines[:-1]
            seq = clean_sequence("".join(lines), rid, name)
            yield Record(rid, seq, None if labels is None else parse_labels(labels, len(seq), rid, name))


def iter_csv(source: Source, name: str | None = None) -> Iterator[Record]:
    """Records of a competition CSV ``proteinID,sequence[,IDRs]``."""
    name = source_name(source, name)
    with open_text(source, name) as handle:
        reader = csv.reader(_lines(handle))
        try:
            header = next(reader, None)
            if header is None:
                return
            cols = [h.strip() for h in header]
            if "proteinID" not in cols or "sequence" not in cols:
                raise InputError(f"{name}: the header must name proteinID and sequence columns, found {cols[:5]}")
            i_id, i_seq = cols.index("proteinID"), cols.index("sequence")
            i_lab = cols.index("IDRs") if "IDRs" in cols else None
            for row in reader:
                if not row:
                    continue
                if len(row) != len(cols):
                    raise InputError(f"{name}: line {reader.line_num}: {len(row)} fields, expected {len(cols)}")
                rid = check_id(row[i_id].strip(), name)
                seq = clean_sequence(row[i_seq], rid, name)
                labels = parse_labels(row[i_lab], len(seq), rid, name) if i_lab is not None else None
                yield Record(rid, seq, labels)
        except csv.Error as exc:
            raise InputError(f"{name}: line {reader.line_num}: malformed CSV ({exc})") from None


class _SizedArray:
    """Stands for ``numpy.ndarray`` in a pickle: a direct call may not allocate more than ``limit`` bytes,
    and ``_reconstruct`` (which takes the class itself) gets the real class back."""

    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, shape=(), dtype=float, *args, **kwargs):
        try:
            n = int(np.prod(np.asarray(shape, dtype=np.int64))) * np.dtype(dtype).itemsize
        except (TypeError, ValueError, OverflowError):
            raise pickle.UnpicklingError("an array with an invalid shape or type") from None
        if n < 0 or n > self.limit:
            raise pickle.UnpicklingError(f"an array of {n} bytes, more than the file can hold")
        return np.ndarray(shape, dtype, *args, **kwargs)


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits plain builtin containers and numpy arrays; refuses every other global."""

    SAFE_BUILTINS = {"list", "dict", "tuple", "set", "frozenset", "str", "int", "float", "bool",
                     "bytes", "bytearray", "complex"}
    SAFE_NUMPY = {
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }
    RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}

    def __init__(self, handle, limit: int):
        super().__init__(handle)
        self.sized = _SizedArray(limit)

    def find_class(self, module, name):
        if module == "builtins" and name in self.SAFE_BUILTINS:
            return super().find_class(module, name)
        if (module, name) in self.SAFE_NUMPY:
            return super().find_class(module, name)
        if (module, name) == ("numpy", "ndarray"):
            return self.sized
        if (module, name) in self.RECONSTRUCT:
            build = super().find_class(module, name)
            # arrays start empty (shape (0,)) and get their data, bounded by the file, from the pickle itself
            return lambda cls, shape, dtype: build(np.ndarray if cls is self.sized else cls, (0,), dtype)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _pickle_bytes(source: Source, name: str) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, (str, Path)):
        try:
            with open(source, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise InputError(f"{name}: cannot open: {exc.strerror}") from None
    return source.read()


def iter_pickle(source: Source | bytes, name: str | None = None) -> Iterator[Record]:
    """Records of a competition pickle (a list of dicts with id, sequence and optional label)."""
    name = source_name(source, name) if not isinstance(source, (bytes, bytearray)) else (name or "input")
    data_bytes = _pickle_bytes(source, name)
    # read from memory: a declared length beyond the data fails as truncated instead of allocating it
    limit = max(len(data_bytes) * 8, 1 << 16)
    try:
        data = _RestrictedUnpickler(io.BytesIO(data_bytes), limit).load()
    except pickle.UnpicklingError as exc:
        raise InputError(f"{name}: unsafe or invalid pickle: {' '.join(str(exc).split())}") from None
    except MemoryError:
        raise InputError(f"{name}: the pickle asks for more memory than its size allows") from None
    except Exception as exc:  # any other failure inside pickle means a corrupt file
        raise InputError(f"{name}: not a readable pickle ({type(exc).__name__})") from None
    if not isinstance(data, (list, tuple)):
        raise InputError(f"{name}: expected a list of records, found {type(data).__name__}")
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "sequence" not in item:
            raise InputError(f"{name}: item {i}: expected a dict with 'id' and 'sequence'")
        rid = item.get("id", f"protein_{i}")
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            raise InputError(f"{name}: item {i}: id is not a string")
        rid = check_id(str(rid), name)
        if not isinstance(item["sequence"], str):
            raise InputError(f"{name}: record '{rid}': sequence is not a string")
        seq = clean_sequence(item["sequence"], rid, name)
        label = item.get("label", item.get("labels"))
        yield Record(rid, seq, None if label is None else parse_labels(label, len(seq), rid, name))


READERS = {"fasta": iter_fasta, "labelled": iter_fasta, "pickle": iter_pickle, "csv": iter_csv}


class SeenIds:
    """The ids read so far, in bounded memory: the latest as strings, older ones as sorted 64-bit hashes
    (8 bytes each instead of about 70), so that a proteome of millions of proteins stays small."""

    CHUNK = 100_000

    def __init__(self):
        self.recent: set[str] = set()
        self.older = np.zeros(0, dtype=np.uint64)

    @staticmethod
    def _key(rid: str) -> int:
        return hash(rid) & 0xFFFFFFFFFFFFFFFF

    def add(self, rid: str) -> bool:
        """Record an id; False when it was seen before."""
        if rid in self.recent:
            return False
        if self.older.size:
            key = np.uint64(self._key(rid))
            i = int(np.searchsorted(self.older, key))
            if i < self.older.size and self.older[i] == key:
                return False
        self.recent.add(rid)
        if len(self.recent) >= self.CHUNK:
            keys = np.fromiter((self._key(r) for r in self.recent), dtype=np.uint64, count=len(self.recent))
            self.older = np.union1d(self.older, keys)
            self.recent = set()
        return True


def _checked(records: Iterator[Record], name: str, check_duplicates: bool, allow_empty: bool) -> Iterator[Record]:
    seen = SeenIds()
    n = 0
    for rec in records:
        if check_duplicates and not seen.add(rec.id):
            raise InputError(f"{name}: record '{rec.id}': duplicate id")
        n += 1
        yield rec
    if not n and not allow_empty:
        raise InputError(f"{name}: no records (an empty input)")


def iter_records(source: Source, fmt: str | None = None, check_duplicates: bool = True,
                 allow_empty: bool = False, name: str | None = None) -> Iterator[Record]:
    """Stream the records of a file (path) or an open handle, refusing duplicate ids and empty inputs."""
    name = source_name(source, name)
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise InputError(f"{source}: no such file")
        fmt = fmt or detect_format(source)
    fmt = fmt or "fasta"
    if fmt not in READERS:
        raise InputError(f"{name}: unknown input format '{fmt}' (choose from {', '.join(READERS)})")
    return _checked(READERS[fmt](source, name), name, check_duplicates, allow_empty)


def records_from_text(text: str, fmt: str = "fasta", name: str = "input") -> Iterator[Record]:
    """Records of text held in memory (a request body, a pasted FASTA)."""
    return iter_records(io.StringIO(text), fmt, name=name)


def read_records(source: Source, fmt: str | None = None, require_labels: bool = False) -> list[Record]:
    """All records of a file as a list; with ``require_labels`` every record must carry labels."""
    records = list(iter_records(source, fmt))
    if require_labels:
        for rec in records:
            if rec.labels is None:
                raise InputError(f"{source_name(source)}: record '{rec.id}': no labels (a labelled file is needed here)")
    return records


def count_fasta_records(path: str | Path) -> int | None:
    """Number of '>' headers in a FASTA file (a fast pre-scan for the progress bar), else None."""
    if detect_format(path) != "fasta":
        return None
    n = 0
    with open(path, "rb") as fh:
        first = fh.read(4).removeprefix(b"\xef\xbb\xbf")[:1]
        fh.seek(0)
        for block in iter(lambda: fh.read(1 << 22), b""):
            n += block.count(b"\n>")
    return n + (first == b">")


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same existing file (through links and relative paths too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
