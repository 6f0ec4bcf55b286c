"""Small synthetic labelled proteins for the tests and the committed fixtures."""

from __future__ import annotations

import numpy as np

from idrkit.records import Record

ORDER = "AVILMFWYCGTNDEQHKRS"  # weighted towards hydrophobic residues below
DISORDER = "PESKQGSEPKSAE"


def _order_p():
    w = np.array([3 if a in "AVILMFWY" else 1 for a in ORDER], dtype=float)
    return w / w.sum()


def synthetic_protein(rng: np.random.Generator, name: str, length: int) -> Record:
    """A protein of ordered (hydrophobic-rich) and disordered (P/E/S/K-rich) segments with labels."""
    seq, lab = [], []
    state = int(rng.integers(0, 2))
    while len(seq) < length:
        n = int(rng.integers(15, 60))
        if state:
            seq += list(rng.choice(list(DISORDER), n))
        else:
            seq += list(rng.choice(list(ORDER), n, p=_order_p()))
        lab += [state] * n
        state = 1 - state
    labels = np.array(lab[:length], dtype=np.int8)
    labels[: int(rng.integers(0, 5))] = -1  # a few unknown residues, as in the real files
    return Record(name, "".join(seq[:length]), labels)


def synthetic_records(n: int = 40, seed: int = 7) -> list[Record]:
    rng = np.random.default_rng(seed)
    return [synthetic_protein(rng, f"prot{i}", int(rng.integers(40, 300))) for i in range(n)]
