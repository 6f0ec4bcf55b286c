"""Writing outputs safely: nothing appears half written, nothing the run did not create is deleted.

A prediction run writes ``OUT.partial`` (a folder for CAID) and, after every block, appends the ids written
and the file size to ``OUT.partial.progress``, whose first line holds the run's options. ``OUT`` appears
only when the run completes (a rename). The progress file is locked while a run writes, so a second run
on the same output is refused instead of interleaving; ``--resume`` cuts the partial file back to the last
complete block and refuses options that differ from the interrupted run's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import IO, Sequence

from ..errors import InputError, OutputError
from ..records import Prediction
from .formats import OutputFormat, caid_text, safe_filename

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None


def os_error(path: str | Path, exc: OSError, note: str = "") -> OutputError:
    """One line naming the path and the OS error (``note`` says what was left behind)."""
    reason = exc.strerror or str(exc)
    return OutputError(f"{path}: cannot write: {reason}" + (f" ({note})" if note else ""))


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary file path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; name a file to write")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
        os.close(fd)
    except OSError as exc:
        raise os_error(path, exc) from None
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise os_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | Path):
    """Yield a temporary folder beside ``path``; only if the block succeeds does it take the place of
    ``path`` (a folder already there is removed then, not before: a failure leaves it as it was)."""
    import shutil

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file; name a folder to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}"
        tmp.mkdir()  # with the user's usual permissions (mkdtemp's folder would be private to its owner)
    except OSError as exc:
        raise os_error(path, exc) from None
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_model_folder_output(path: str | Path) -> Path:
    """Refuse to write a model over something that is not a model folder (a file, or a folder without
    ``model.json``): :func:`atomic_folder` would replace it whole."""
    path = Path(path)
    if path.exists() and not (path / "model.json").is_file():
        raise InputError(f"{path}: exists and is not a model folder; not overwriting it")
    return path


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a whole text file through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def check_output(output: str | Path, fmt: OutputFormat, inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse an output that is an input, a folder for a one-file format, or a folder not of CAID files."""
    out = Path(output)
    for src in inputs:
        if out.exists() and os.path.exists(src) and os.path.samefile(out, src):
            raise InputError(f"{output}: the output is the input file {src}; choose another output")
    if out.is_dir() and not fmt.per_file:
        raise InputError(f"{output}: is a folder; name a file for --format {fmt.name}")
    if out.exists() and fmt.per_file:
        if not out.is_dir():
            raise InputError(f"{output}: exists and is not a folder; --format caid writes a folder")
        other = [p.name for p in out.iterdir() if not (p.is_file() and p.suffix == ".caid")]
        if other:
            raise InputError(f"{output}: the folder holds files other than .caid files (e.g. {other[0]}); "
                             "choose a new or empty folder")
    return out


class PredictionWriter:
    """Writes predictions into ``PATH.partial`` and moves it to ``PATH`` when closed.

    ``options`` (the run's settings: model, its weights hash, track, threshold, format, smoothing) are
    stored in the progress file; a resumed run must give the same ones. :attr:`done` holds the ids an
    interrupted run had written (only those: memory does not grow with the run). On :meth:`abort` the
    partial files are removed, or kept for ``--resume``.
    """

    def __init__(self, path: str | Path, fmt: OutputFormat, meta: dict | None = None, resume: bool = False,
                 options: dict | None = None):
        self.path, self.fmt = Path(path), fmt
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.progress = self.path.with_name(self.path.name + ".partial.progress")
        self.options = options or {}
        self.done: set[str] = set()
        self.count = 0
        self._fh = self._prog = None
        existed = self.progress.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._prog = open(self.progress, "a+")
        except OSError as exc:
            raise os_error(self.path, exc) from None
        self._lock()
        try:
            self._open(meta or {}, resume)
        except BaseException:
            self._prog.close()
            if not existed:
                self.progress.unlink(missing_ok=True)
            raise

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._prog.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._prog.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputError(f"{self.path}: another idrkit run is writing this output; wait for it "
                                  "or choose another output") from None
            raise os_error(self.path, exc) from None

    def _open(self, meta: dict, resume: bool) -> None:
        offset = self._read_progress() if resume else None
        try:
            if offset is None:
                self._start_new()
                self._fh = None if self.fmt.per_file else open(self.partial, "w+b")
                if self._fh:
                    self._fh.write(self.fmt.header(meta).encode())
                self._prog.truncate(0)
                self._prog.write("#options " + json.dumps(self.options, sort_keys=True) + "\n")
                self._prog.flush()
            elif not self.fmt.per_file:
                self._fh = open(self.partial, "r+b")
                self._fh.truncate(offset)
                self._fh.seek(offset)
        except OSError as exc:
            self._remove_partial()
            raise os_error(self.path, exc) from None
        self.count = len(self.done)

    def _read_progress(self) -> int | None:
        """The offset of the last complete block of an interrupted run, or None to start afresh."""
        self._prog.seek(0)
        lines = self._prog.read().splitlines()
        if not lines or not self.partial.exists():
            return None
        head = lines[0]
        if not head.startswith("#options "):
            raise InputError(f"{self.progress}: not a progress file of this idrkit; remove it to start afresh")
        try:
            stored = json.loads(head[len("#options "):])
        except ValueError:
            raise InputError(f"{self.progress}: damaged progress file; remove it to start afresh") from None
        diff = [k for k in sorted(set(stored) | set(self.options)) if stored.get(k) != self.options.get(k)]
        if diff:
            what = ", ".join(f"{k}: {stored.get(k)!r} then, {self.options.get(k)!r} now" for k in diff)
            raise InputError(f"{self.path}: --resume with other options than the interrupted run ({what}); "
                             "repeat its options, or run without --resume to start afresh")
        offset = 0
        for line in lines[1:]:
            rid, _, off = line.rpartition("\t")
            if rid:
                self.done.add(rid)
                offset = int(off)
        return offset

    def _start_new(self) -> None:
        self._remove_partial()
        if self.fmt.per_file:
            self.partial.mkdir()

    def _remove_partial(self) -> None:
        """Remove the partial output this run (or an earlier run of the same output) created."""
        if self.partial.is_dir() and not self.partial.is_symlink():
            for f in self.partial.iterdir():
                if f.suffix in (".caid", ".tmp") and f.is_file():
                    f.unlink()
            with contextlib.suppress(OSError):
                self.partial.rmdir()
        elif self.partial.exists() or self.partial.is_symlink():
            self.partial.unlink()

    def write_block(self, preds: Sequence[Prediction]) -> None:
        """Write the predictions of one block and record them as done."""
        try:
            if self.fmt.per_file:
                for p in preds:
                    self._write_caid(p)
                offset = 0
            else:
                self._fh.write(self.fmt.block(preds, self.count == 0).encode())
                self._fh.flush()
                offset = self._fh.tell()
            self.count += len(preds)
            self._prog.write("".join(f"{p.id}\t{offset}\n" for p in preds))
            self._prog.flush()
        except OSError as exc:
            raise os_error(self.path, exc) from None

    def _write_caid(self, p: Prediction) -> None:
        name = safe_filename(p.id)
        target = self.partial / f"{name}.caid"
        if target.exists():  # the same protein from a torn block is rewritten; another id is a clash
            with open(target) as fh:
                first = fh.readline().rstrip("\n")
            if first != f">{p.id}":
                raise InputError(f"record '{p.id}': two ids map to the same CAID file name {name}.caid")
        tmp = self.partial / f".{name}.tmp"
        tmp.write_text(caid_text(p))
        os.replace(tmp, target)

    def close(self) -> int:
        """Finish the output and move it into place; returns how many proteins it holds."""
        try:
            if self._fh:
                self._fh.write(self.fmt.footer().encode())
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None
                os.replace(self.partial, self.path)
            else:
                self._move_caid_files()
        except OSError as exc:
            raise os_error(self.path, exc, "the partial output is kept; fix the cause and run again with "
                                           "--resume") from None
        self.progress.unlink(missing_ok=True)
        self._prog.close()
        return self.count

    def _move_caid_files(self) -> None:
        if not self.path.exists():
            os.replace(self.partial, self.path)
            return
        # an existing folder of CAID files (checked before the run): its .caid files are replaced
        new = {f.name for f in self.partial.iterdir()}
        for f in self.path.iterdir():
            if f.suffix == ".caid" and f.name not in new and f.is_file():
                f.unlink()
        for name in new:
            os.replace(self.partial / name, self.path / name)
        self.partial.rmdir()

    def abort(self, keep: bool = False) -> None:
        """Stop; keep the partial output for ``--resume`` or remove it."""
        with contextlib.suppress(OSError):
            if self._fh:
                self._fh.close()
            if not keep:
                self._remove_partial()
                self.progress.unlink(missing_ok=True)
        self._prog.close()


class StreamWriter:
    """Writes predictions to an open text stream (standard output) as they come."""

    def __init__(self, stream: IO[str], fmt: OutputFormat, meta: dict | None = None):
        if fmt.per_file:
            raise InputError("--format caid writes one file per protein: give a folder with -o")
        self.stream, self.fmt, self.count = stream, fmt, 0
        self.done: set[str] = set()
        self._write(fmt.header(meta or {}))

    def write_block(self, preds: Sequence[Prediction]) -> None:
        self._write(self.fmt.block(preds, self.count == 0))
        self.count += len(preds)

    def close(self) -> int:
        self._write(self.fmt.footer())
        return self.count

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise os_error("standard output", exc) from None

    def abort(self, keep: bool = False) -> None:
        """Nothing to remove: rows already written to a stream cannot be taken back."""


def stdout_writer(fmt: OutputFormat, meta: dict | None = None) -> StreamWriter:
    """A :class:`StreamWriter` on standard output."""
    return StreamWriter(sys.stdout, fmt, meta)
