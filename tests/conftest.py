"""Shared fixtures: small synthetic labelled proteins and the path of the real data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from idrkit.sequences import Record

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

ORDER = "AVILMFWYCGTNDEQHKRS"  # weighted towards hydrophobic residues below
DISORDER = "PESKQGSEPKSAE"


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


def _order_p():
    w = np.array([3 if a in "AVILMFWY" else 1 for a in ORDER], dtype=float)
    return w / w.sum()


@pytest.fixture(scope="session")
def tiny_records() -> list[Record]:
    rng = np.random.default_rng(7)
    return [synthetic_protein(rng, f"prot{i}", int(rng.integers(40, 300))) for i in range(40)]


@pytest.fixture(scope="session")
def tiny_labelled_file(tmp_path_factory, tiny_records) -> Path:
    from idrkit.sequences import labels_to_string

    path = tmp_path_factory.mktemp("data") / "tiny.fasta"
    path.write_text("".join(f">{r.id}\n{r.sequence}\n{labels_to_string(r.labels)}\n" for r in tiny_records))
    return path


def need_data(name: str) -> Path:
    """Path of a file of the real data set, or skip the test when the data folder is absent."""
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real data not available ({path} is missing; it sits beside the repository in development)")
    return path


@pytest.fixture(scope="session")
def cnn_dir(tmp_path_factory, tiny_records) -> Path:
    """A tiny trained CNN model folder (needs torch to train; predicts with numpy)."""
    pytest.importorskip("torch")
    from idrkit.models import get_family

    out = tmp_path_factory.mktemp("cnn") / "m"
    get_family("cnn")(channels=8, layers=2, epochs=1, progress=False).fit(tiny_records[:10]).save(out)
    return out
