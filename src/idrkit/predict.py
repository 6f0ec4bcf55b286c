"""Batch and streaming prediction, with the shipped default model unless another is given."""

from __future__ import annotations

import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .errors import ModelError
from .models import Estimator, load_model
from .regions import (DEFAULT_MAX_GAP, DEFAULT_MIN_LENGTH, DEFAULT_THRESHOLD, call_regions,
                      scores_to_calls)
from .sequences import Prediction, Record, clean_sequence

WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_MODEL = WEIGHTS / "default"


@lru_cache(maxsize=4)
def _load_cached(path: str) -> Estimator:
    return load_model(path)


def get_model(model: str | Path | Estimator | None = None) -> Estimator:
    """An estimator from a folder path, an estimator itself, or None for the shipped default."""
    if isinstance(model, Estimator):
        return model
    path = Path(model) if model is not None else DEFAULT_MODEL
    if model is None and not (path / "model.json").is_file():
        raise ModelError(f"the default model is missing from the installation ({path})")
    return _load_cached(str(path.resolve()))


def default_threshold(model: Estimator, track: str = "pdb") -> float:
    """The threshold stored with a model for a track (chosen on validation data), else 0.5."""
    return float(model.meta.get("thresholds", {}).get(track, DEFAULT_THRESHOLD))


def predict_disorder(sequence: str | Sequence[str], model=None, track: str = "pdb"):
    """Disorder scores of one sequence (a float32 array) or of a list of sequences (a list of arrays)."""
    est = get_model(model)
    single = isinstance(sequence, str)
    seqs = [sequence] if single else list(sequence)
    seqs = [clean_sequence(s, f"sequence {i + 1}") for i, s in enumerate(seqs)]
    out = est.predict_proba(seqs, track=track)
    return out[0] if single else out


def batches(records: Iterable[Record], max_residues: int = 200_000) -> Iterator[list[Record]]:
    """Group records into batches of about ``max_residues`` residues."""
    batch, size = [], 0
    for rec in records:
        batch.append(rec)
        size += len(rec)
        if size >= max_residues:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def to_prediction(rec: Record, scores: np.ndarray, threshold: float, min_length: int,
                  max_gap: int) -> Prediction:
    """A :class:`Prediction` with calls and regions from a record and its scores."""
    calls = scores_to_calls(scores, threshold, min_length, max_gap)
    return Prediction(rec.id, rec.sequence, scores, calls, call_regions(calls))


def predict_records(records: Iterable[Record], model=None, threshold: float | None = None,
                    min_length: int = DEFAULT_MIN_LENGTH, max_gap: int = DEFAULT_MAX_GAP,
                    track: str = "pdb", max_residues: int = 200_000,
                    on_warning: Callable[[str], None] | None = None) -> Iterator[Prediction]:
    """Stream predictions for a stream of records, a batch at a time.

    Models that report per-protein problems (e.g. an LLM answer of the wrong length) pass them to
    ``on_warning`` as one line naming the record.
    """
    est = get_model(model)
    for batch in batches(records, max_residues):
        preds, warnings = predict_batch(est, batch, track, threshold, min_length, max_gap)
        for msg in warnings:
            if on_warning:
                on_warning(msg)
        yield from preds


def predict_batch(est: Estimator, records: Sequence[Record], track: str = "pdb", threshold: float | None = None,
                  min_length: int = DEFAULT_MIN_LENGTH, max_gap: int = DEFAULT_MAX_GAP
                  ) -> tuple[list[Prediction], list[str]]:
    """Predictions of one batch, and the model's per-protein problems as lines naming the record."""
    thr = default_threshold(est, track) if threshold is None else threshold
    scores = est.predict_proba([r.sequence for r in records], track=track)
    warnings = [f"record '{records[item['index']].id}': {item['message']}" for item in getattr(est, "report", [])]
    return [to_prediction(r, sc, thr, min_length, max_gap) for r, sc in zip(records, scores)], warnings


# ------------------------------------------------------------------------------------ proteome-scale runs

def _predict_block(model_path: str | None, texts_fmt: str, block: list[tuple[str, str]], track: str,
                   threshold: float | None, min_length: int, max_gap: int) -> tuple[list[tuple[str, str]], list[str]]:
    """Predict one block of (id, sequence) and format it: runs in worker processes and on Dask workers."""
    from .sequences import record_text

    preds, warnings = predict_batch(get_model(model_path), [Record(rid, seq) for rid, seq in block], track,
                                    threshold, min_length, max_gap)
    return [(p.id, record_text(p, texts_fmt)) for p in preds], warnings


def count_fasta_records(path: str | Path) -> int | None:
    """Number of '>' headers in a FASTA file (a fast pre-scan for the progress bar), else None."""
    from .sequences import detect_format

    if detect_format(path) != "fasta":
        return None
    n = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            n += block.count(b"\n>")
    with open(path, "rb") as fh:
        n += fh.read(1) == b">"
    return n


class _Progress:
    """Sequences done, residues per second and ETA on stderr (tqdm when installed)."""

    def __init__(self, total: int | None, enabled: bool):
        self.bar = None
        self.residues = 0
        self.t0 = time.time()
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="seq", desc="predict", mininterval=1, smoothing=0.1)
            except ImportError:
                self.bar = None

    def update(self, n_seq: int, n_res: int) -> None:
        self.residues += n_res
        if self.bar is not None:
            rate = self.residues / max(time.time() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{rate:,.0f} residues/s", refresh=False)
            self.bar.update(n_seq)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_prediction(input_path: str | Path, output: str | Path, fmt: str, model: str | None = None,
                   threshold: float | None = None, min_length: int = DEFAULT_MIN_LENGTH,
                   max_gap: int = DEFAULT_MAX_GAP, track: str = "pdb", jobs: int = 1, resume: bool = False,
                   progress: bool = False, engine: str = "local", scheduler: str | None = None,
                   block_residues: int = 100_000, on_warning: Callable[[str], None] | None = None,
                   meta: dict | None = None) -> dict:
    """Stream an input file through a model into an output file, with bounded memory.

    Records are read lazily and grouped into blocks of about ``block_residues``; at most ``2 * jobs``
    blocks are in flight, so memory stays flat however large the input. ``jobs`` > 1 uses worker
    processes; ``engine='dask'`` sends blocks to a Dask cluster at ``scheduler`` (or a local one).
    The output appears only when complete; ``resume`` continues an interrupted run of the same command.
    """
    from .sequences import PredictionWriter, iter_records

    get_model(model)  # fail early on a bad model, in this process (and cache it for the local run)
    model_path = None if model is None else str(Path(model).resolve())
    writer = PredictionWriter(output, fmt, meta, resume=resume)
    total = count_fasta_records(input_path) if progress else None
    bar = _Progress(total, progress)
    if writer.done:
        bar.update(len(writer.done), 0)
    stats = {"proteins": 0, "residues": 0, "skipped": len(writer.done)}
    t0 = time.time()

    def blocks():
        for batch in batches((r for r in iter_records(input_path) if r.id not in writer.done), block_residues):
            yield [(r.id, r.sequence) for r in batch]

    def consume(result, block):
        texts, warnings = result
        for w in warnings:
            if on_warning:
                on_warning(w)
        writer.write_block(texts)
        n_res = sum(len(s) for _, s in block)
        stats["proteins"] += len(block)
        stats["residues"] += n_res
        bar.update(len(block), n_res)

    args = (model_path, fmt)
    rest = (track, threshold, min_length, max_gap)
    try:
        if engine == "dask":
            _run_dask(blocks(), consume, args, rest, scheduler, jobs)
        elif jobs > 1:
            _run_pool(blocks(), consume, args, rest, jobs)
        else:
            for block in blocks():
                consume(_predict_block(*args, block, *rest), block)
    except KeyboardInterrupt:
        writer.abort(keep=True)
        bar.close()
        raise
    except BaseException:
        writer.abort(keep=False)
        bar.close()
        raise
    bar.close()
    stats["written"] = writer.close()
    stats["seconds"] = time.time() - t0
    return stats


def _run_pool(blocks, consume, args, rest, jobs: int) -> None:
    import concurrent.futures as cf
    import multiprocessing as mp
    from collections import deque

    ctx = mp.get_context("spawn" if os.name == "nt" else "fork")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_single_thread) as pool:
        pending: deque = deque()
        for block in blocks:
            pending.append((pool.submit(_predict_block, *args, block, *rest), block))
            if len(pending) >= 2 * jobs:
                fut, blk = pending.popleft()
                consume(fut.result(), blk)
        while pending:
            fut, blk = pending.popleft()
            consume(fut.result(), blk)


def _single_thread() -> None:
    """Worker processes use one thread each (BLAS and idrkit's own), so that N jobs use N cores."""
    os.environ["IDRKIT_THREADS"] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    os.environ["OMP_NUM_THREADS"] = "1"


def _run_dask(blocks, consume, args, rest, scheduler: str | None, jobs: int) -> None:
    from collections import deque

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
        pending: deque = deque()
        limit = 2 * max(1, len(client.scheduler_info().get("workers", {})) or jobs)
        for block in blocks:
            pending.append((client.submit(_predict_block, *args, block, *rest, pure=False), block))
            if len(pending) >= limit:
                fut, blk = pending.popleft()
                consume(fut.result(), blk)
        while pending:
            fut, blk = pending.popleft()
            consume(fut.result(), blk)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
