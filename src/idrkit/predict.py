"""Records in, predictions out: the shipped default model unless another is given.

One flow serves the Python API, the command line (files and standard output), the HTTP API and Dask:
records are grouped into blocks, a block is predicted (here, in worker processes or on Dask workers) into
:class:`~idrkit.records.Prediction` values, and a writer formats them. How scores become calls is one
frozen :class:`~idrkit.regions.CallOptions`; the threshold is resolved by
:func:`~idrkit.models.base.resolve_threshold`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
import threading
import time
from collections import deque
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from ._version import __version__
from .errors import IdrkitError, InputError
from .io.files import PredictionWriter, StreamWriter, check_output
from .io.formats import OutputFormat
from .io.readers import count_fasta_records, iter_records
from .models import WEIGHTS, Estimator, load_model, model_folder
from .models._runtime import available_cores, keep_freed_memory, progress_bar
from .models.base import resolve_threshold
from .records import Prediction, Record, clean_sequence
from .regions import CallOptions, make_prediction

DEFAULT_MODEL = WEIGHTS / "default"
BLOCK_RESIDUES = 100_000
BLOCK_PROTEINS = 2_000  # bounds the per-protein overhead of blocks of many tiny proteins
LARGE_INPUT_BYTES = 1_000_000  # about a million residues: worth starting workers and showing progress


@lru_cache(maxsize=4)
def _load_cached(path: str) -> Estimator:
    return load_model(path)


def describe_model(model: str | Path) -> dict:
    """What ``idrkit models`` and ``/health`` say of a model: name, family, tracks, size, card summary."""
    folder = model_folder(model)
    est = get_model(model)
    card = est.meta.get("card", {})
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())  # parts in sub-folders too
    n_params = sum(int(v.size) for part in [est, *est.parts()] for k, v in part.arrays.items()
                   if k.startswith(("w.", "head.", "lr.")) and not k.endswith((".mu", ".sd")))
    validation = {}
    card_file = folder / "card.json"
    if card_file.is_file():
        import json

        try:
            validation = json.loads(card_file.read_text()).get("validation", {})
        except ValueError:
            validation = {}
    auc = next((v.get("auc") for v in validation.values() if isinstance(v, dict)), None)
    return {"name": str(model), "folder": str(folder), "family": est.family, "tracks": ",".join(est.tracks),
            "parameters": n_params, "size_kb": round(size / 1024), "trained_at": card.get("trained_at", ""),
            "thresholds": est.meta.get("thresholds", {}),
            "training_files": [f"{f.get('track')}:{Path(f.get('path', '')).name}" for f in card.get("training_files", [])],
            "validation_auc": "" if auc is None else round(float(auc), 4)}


def get_model(model: str | Path | Estimator | None = None) -> Estimator:
    """An estimator from a folder path, a shipped model's name (``default``, ``fast``; None: ``default``),
    or an estimator itself."""
    if isinstance(model, Estimator):
        return model
    return _load_cached(str(model_folder(model)))


def check_track(model: Estimator, track: str) -> None:
    """Refuse a track the model does not have, naming the ones it has."""
    if track not in model.tracks:
        raise InputError(f"this model has no '{track}' track (it has {', '.join(model.tracks)})")


def predict_disorder(sequence: str | Sequence[str], model=None, track: str = "pdb"):
    """Disorder scores of one sequence (a float32 array) or of a list of sequences (a list of arrays)."""
    est = get_model(model)
    single = isinstance(sequence, str)
    seqs = [sequence] if single else list(sequence)
    seqs = [clean_sequence(s, f"sequence {i + 1}") for i, s in enumerate(seqs)]
    out = est.predict_proba(seqs, track=track)
    return out[0] if single else out


def blocks(records: Iterable[Record], max_residues: int = BLOCK_RESIDUES,
           max_proteins: int = BLOCK_PROTEINS) -> Iterator[list[Record]]:
    """Group records into blocks of about ``max_residues`` residues and at most ``max_proteins`` proteins."""
    block, size = [], 0
    for rec in records:
        block.append(rec)
        size += len(rec)
        if size >= max_residues or len(block) >= max_proteins:
            yield block
            block, size = [], 0
    if block:
        yield block


def predict_block(est: Estimator, records: Sequence[Record], options: CallOptions = CallOptions()
                  ) -> tuple[list[Prediction], list[str]]:
    """Predictions of one block, and the model's per-protein problems as lines naming the record."""
    threshold = resolve_threshold(est, options.track, options.threshold)
    scores = est.predict_proba([r.sequence for r in records], track=options.track)
    warnings = [f"record '{records[item['index']].id}': {item['message']}" for item in est.report]
    return [make_prediction(r.id, r.sequence, sc, options, threshold) for r, sc in zip(records, scores)], warnings


def predict_records(records: Iterable[Record], model=None, options: CallOptions = CallOptions(),
                    on_warning: Callable[[str], None] | None = None) -> Iterator[Prediction]:
    """Stream predictions for a stream of records, a block at a time, in this process."""
    est = get_model(model)
    check_track(est, options.track)
    for block in blocks(records):
        preds, warnings = predict_block(est, block, options)
        for msg in warnings:
            if on_warning:
                on_warning(msg)
        yield from preds


def predict_pairs(model_path: str | None, block: list[tuple[str, str]], options: CallOptions
                  ) -> tuple[list[Prediction], list[str]]:
    """Predict one block of (id, sequence) pairs by model folder (None: the default): what worker processes,
    Dask workers and the web service's pool run."""
    return predict_block(get_model(model_path), [Record(rid, seq) for rid, seq in block], options)


def map_bounded(submit: Callable, items: Iterable, limit: int) -> Iterator[tuple]:
    """``(item, result)`` of ``submit(item).result()`` in input order, with at most ``limit`` in flight."""
    pending: deque = deque()
    for item in items:
        pending.append((item, submit(item)))
        if len(pending) >= limit:
            first, future = pending.popleft()
            yield first, future.result()
    while pending:
        first, future = pending.popleft()
        yield first, future.result()


class _Done:
    """An already computed result, for the in-process path of :func:`map_bounded`."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def weights_digest(model: str | None) -> str:
    """SHA-256 (first 16 hex digits) of a model's weights file, to tell models apart on resume."""
    folder = model_folder(model)
    h = hashlib.sha256()
    try:
        with open(folder / "weights.npz", "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return ""
    return h.hexdigest()[:16]


def default_jobs(input_path: str | Path) -> int:
    """Every core for a large input, one process for a small one (starting workers would cost more)."""
    try:
        large = os.path.getsize(input_path) >= LARGE_INPUT_BYTES
    except OSError:
        large = False
    return available_cores() if large else 1


def default_progress(input_path: str | Path) -> bool:
    """A progress bar by default only on a terminal and for a large input (never in pipes or logs)."""
    try:
        return sys.stderr.isatty() and os.path.getsize(input_path) >= LARGE_INPUT_BYTES
    except (OSError, ValueError):
        return False


def run_prediction(input_path: str | Path, output: str | Path | None, fmt: OutputFormat, model: str | None = None,
                   options: CallOptions = CallOptions(), jobs: int | None = None, resume: bool = False,
                   progress: bool | None = None, engine: str = "local", scheduler: str | None = None,
                   block_residues: int = BLOCK_RESIDUES, on_warning: Callable[[str], None] | None = None) -> dict:
    """Stream an input file through a model into an output file (or standard output), with bounded memory.

    Records are read lazily and grouped into blocks of about ``block_residues``; at most ``2 * jobs``
    blocks are in flight, so memory stays flat however large the input. ``jobs`` > 1 uses worker
    processes (None: :func:`default_jobs`); ``engine='dask'`` sends blocks to a Dask cluster at ``scheduler``
    (or a local one). ``progress`` None shows a bar only on a terminal for a large input. A file output
    appears only when complete; ``resume`` continues an interrupted run of the same command.
    """
    jobs = default_jobs(input_path) if jobs is None else jobs
    progress = default_progress(input_path) if progress is None else progress
    if jobs < 1:
        raise InputError("--jobs must be at least 1")
    est = get_model(model)  # fail early on a bad model, in this process (and cache it for the local run)
    check_track(est, options.track)
    model_path = str(model_folder(model))
    meta = {"idrkit": __version__, "model": model or "default", "track": options.track}
    records = iter_records(input_path)
    first = next(records)  # an unreadable or empty input stops here, before any output is touched
    records = itertools.chain([first], records)
    if output is None:
        if resume:
            raise InputError("--resume needs an output file (-o)")
        writer: PredictionWriter | StreamWriter = StreamWriter(sys.stdout, fmt, meta)
    else:
        check_output(output, fmt, [input_path])
        run_options = {"model": meta["model"], "weights": weights_digest(model), "format": fmt.name,
                       **options.as_dict()}
        writer = PredictionWriter(output, fmt, meta, resume=resume, options=run_options)
    bar = progress_bar(count_fasta_records(input_path) if progress else None, "predict", progress, unit="seq",
                       mininterval=1, smoothing=0.1)
    bar.update(len(writer.done))
    stats = {"proteins": 0, "residues": 0, "skipped": len(writer.done)}
    t0 = time.time()
    todo = ([(r.id, r.sequence) for r in block]
            for block in blocks((r for r in records if r.id not in writer.done), block_residues))
    try:
        for block, (preds, warnings) in _map_blocks(todo, model_path, options, jobs, engine, scheduler):
            for msg in warnings:
                if on_warning:
                    on_warning(msg)
            writer.write_block(preds)
            n_res = sum(len(s) for _, s in block)
            stats["proteins"] += len(block)
            stats["residues"] += n_res
            bar.set_postfix_str(f"{stats['residues'] / max(time.time() - t0, 1e-9):,.0f} residues/s", refresh=False)
            bar.update(len(block))
    except KeyboardInterrupt:
        writer.abort(keep=True)
        bar.close()
        raise
    except IdrkitError as exc:
        writer.abort(keep=False)
        bar.close()
        if isinstance(writer, StreamWriter) and writer.count:
            raise _with_note(exc, f"the {writer.count} proteins already written to standard output are "
                                  "incomplete and cannot be taken back") from None
        raise
    except BaseException:
        writer.abort(keep=False)
        bar.close()
        raise
    bar.close()
    stats["written"] = writer.close()
    stats["seconds"] = time.time() - t0
    return stats


def _with_note(exc: IdrkitError, note: str) -> IdrkitError:
    new = IdrkitError(f"{exc} ({note})")
    new.exit_code = exc.exit_code
    return new


def _map_blocks(todo, model_path, options, jobs, engine, scheduler):
    """(block, (predictions, warnings)) for each block, in order, here, on a process pool or on Dask."""
    if engine == "dask":
        yield from _map_dask(todo, model_path, options, jobs, scheduler)
    elif jobs > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        ctx = mp.get_context("spawn" if os.name == "nt" else "fork")
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=init_worker,
                                    initargs=(os.getpid(),)) as pool:
            yield from map_bounded(lambda b: pool.submit(predict_pairs, model_path, b, options), todo, 2 * jobs)
    else:
        est = get_model(model_path)
        yield from map_bounded(lambda b: _Done(predict_block(est, [Record(i, s) for i, s in b], options)), todo, 1)


def init_worker(parent: int) -> None:
    """Worker processes use one thread each (BLAS and idrkit's own), so that N jobs use N cores, and end
    when the parent process is gone (also when it was killed)."""
    os.environ["IDRKIT_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    keep_freed_memory()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    # a thread polls the parent: once it is gone (also after kill -9) the worker is re-parented and exits.
    # (Linux's PR_SET_PDEATHSIG would fire when the parent *thread* that started the worker ends, which in
    # a server is any request thread.)
    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="idrkit-parent-watch").start()


def _map_dask(todo, model_path, options, jobs, scheduler):
    from .errors import require

    distributed = require("distributed", "distributed")
    cluster = None
    if scheduler:
        client = distributed.Client(scheduler)
    else:
        cluster = distributed.LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=False,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    try:
        limit = 2 * max(1, len(client.scheduler_info().get("workers", {})) or jobs)
        yield from map_bounded(lambda b: client.submit(predict_pairs, model_path, b, options, pure=False),
                               todo, limit)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
