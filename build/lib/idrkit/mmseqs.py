"""The MMseqs2 wrapper: clustering for homology-aware splits and searches for leakage checks.

MMseqs2 is an external program found on PATH (Debian/Ubuntu package ``mmseqs2``, or bioconda).
Every call goes through :func:`run`, which starts it in a temporary folder, waits, and reads its output.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import IdrkitError, MissingDependencyError


def executable() -> str:
    """Path of the ``mmseqs`` program, or a clear error naming the package to install."""
    exe = shutil.which("mmseqs")
    if exe is None:
        raise MissingDependencyError("MMseqs2 (the 'mmseqs' program)",
                                     "apt-get install mmseqs2 (or: conda install -c bioconda mmseqs2)")
    return exe


def run(args: Sequence[str], cwd: Path) -> None:
    """Run one mmseqs sub-command, raising an error with its last output lines if it fails."""
    proc = subprocess.run([executable(), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise IdrkitError(f"mmseqs {args[0]} failed (exit {proc.returncode}): {tail}")


def _write_fasta(path: Path, seqs: Sequence[str], prefix: str) -> None:
    with open(path, "w") as fh:
        for i, s in enumerate(seqs):
            fh.write(f">{prefix}{i}\n{s}\n")


def cluster(sequences: Sequence[str], min_seq_id: float = 0.3, coverage: float = 0.5,
            threads: int = 2) -> list[int]:
    """Cluster index of each sequence (MMseqs2 ``easy-cluster``); members of a cluster share one index."""
    with tempfile.TemporaryDirectory(prefix="idrkit-mmseqs-") as tmp:
        tmp = Path(tmp)
        _write_fasta(tmp / "in.fasta", sequences, "s")
        run(["easy-cluster", "in.fasta", "out", "work", "--min-seq-id", str(min_seq_id), "-c", str(coverage),
             "--threads", str(threads), "-v", "1"], tmp)
        rep_of: dict[int, str] = {}
        for line in (tmp / "out_cluster.tsv").read_text().splitlines():
            rep, member = line.split("\t")
            rep_of[int(member[1:])] = rep
    reps: dict[str, int] = {}
    return [reps.setdefault(rep_of.get(i, f"self{i}"), len(reps)) for i in range(len(sequences))]


@dataclass
class Hit:
    query: int
    target: int
    identity: float
    evalue: float


def search(queries: Sequence[str], targets: Sequence[str], min_seq_id: float = 0.3,
           evalue: float = 1e-3, threads: int = 2) -> list[Hit]:
    """Hits of queries against targets (MMseqs2 ``easy-search``) at or above ``min_seq_id`` identity."""
    with tempfile.TemporaryDirectory(prefix="idrkit-mmseqs-") as tmp:
        tmp = Path(tmp)
        _write_fasta(tmp / "q.fasta", queries, "q")
        _write_fasta(tmp / "t.fasta", targets, "t")
        run(["easy-search", "q.fasta", "t.fasta", "hits.m8", "work", "--min-seq-id", str(min_seq_id),
             "-e", str(evalue), "--threads", str(threads), "-v", "1", "--format-output",
             "query,target,fident,evalue"], tmp)
        hits = []
        for line in (tmp / "hits.m8").read_text().splitlines():
            q, t, ident, ev = line.split("\t")
            hits.append(Hit(int(q[1:]), int(t[1:]), float(ident), float(ev)))
    return hits
