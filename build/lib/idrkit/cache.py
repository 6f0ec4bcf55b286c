"""On-disk caches keyed by a name and a sequence hash (teacher scores, protein-LM embeddings).

Each cache is a folder of shard files ``*.npz`` holding ``keys`` (hex digests), ``offsets`` and one
concatenated ``values`` array; new entries go into a new shard, written atomically, so that two runs never
corrupt each other and a second run costs only the reads.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    """``$IDRKIT_CACHE`` if set, else ``$XDG_CACHE_HOME/idrkit`` (default ``~/.cache/idrkit``)."""
    if os.environ.get("IDRKIT_CACHE"):
        return Path(os.environ["IDRKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "idrkit"


def sequence_key(sequence: str) -> str:
    """Stable hex digest of a sequence."""
    return hashlib.sha1(sequence.encode("ascii")).hexdigest()


def sequence_hash64(sequence: str) -> int:
    """64-bit integer hash of a sequence (first 16 hex digits of its SHA-1), for compact storage."""
    return int(sequence_key(sequence)[:16], 16)


class ArrayCache:
    """A cache of one array per sequence, for one producer (e.g. a teacher or an embedding model)."""

    def __init__(self, name: str, root: str | Path | None = None):
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        self.folder = Path(root or cache_root()) / safe
        self._index: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._index is None:
            self._index = {}
            if self.folder.is_dir():
                for shard in sorted(self.folder.glob("*.npz")):
                    with np.load(shard) as z:
                        keys, offsets, values = z["keys"], z["offsets"], z["values"]
                    for i, key in enumerate(keys.tolist()):
                        self._index[key] = values[offsets[i]:offsets[i + 1]]
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def get(self, sequence: str) -> np.ndarray | None:
        """The cached array of a sequence, or None."""
        return self._load().get(sequence_key(sequence))

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store arrays by sequence in one new shard."""
        if not items:
            return
        index = self._load()
        keys = [sequence_key(s) for s in items]
        arrays = [np.asarray(a) for a in items.values()]
        offsets = np.cumsum([0] + [a.shape[0] for a in arrays])
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{uuid.uuid4().hex}.tmp.npz"
        np.savez(tmp, keys=np.array(keys), offsets=offsets, values=np.concatenate(arrays))
        os.replace(tmp, self.folder / f"{uuid.uuid4().hex}.npz")
        index.update(zip(keys, arrays))

    def compute(self, sequences: list[str], fn, chunk: int = 2000, progress=None) -> list[np.ndarray]:
        """Arrays for all sequences: cached ones read, the rest computed by ``fn(list) -> list`` and stored."""
        missing = list(dict.fromkeys(s for s in sequences if self.get(s) is None))
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]
            self.put_many(dict(zip(part, fn(part))))
            if progress:
                progress(len(part))
        return [self.get(s) for s in sequences]
