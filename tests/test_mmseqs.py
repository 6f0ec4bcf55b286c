import shutil

import numpy as np
import pytest

from idrkit.errors import MissingDependencyError
from idrkit import mmseqs

needs_mmseqs = pytest.mark.skipif(shutil.which("mmseqs") is None, reason="mmseqs2 is not installed")


def _homolog(rng, seq, changes):
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    out = list(seq)
    for i in rng.choice(len(seq), changes, replace=False):
        out[i] = rng.choice(aa)
    return "".join(out)


def test_missing_program_names_the_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install mmseqs2"):
        mmseqs.executable()


@needs_mmseqs
def test_cluster_groups_homologs_apart_from_unrelated():
    rng = np.random.default_rng(2)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    a, b = "".join(rng.choice(aa, 200)), "".join(rng.choice(aa, 220))
    seqs = [a, _homolog(rng, a, 30), b, _homolog(rng, b, 30)]
    ids = mmseqs.cluster(seqs)
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]


@needs_mmseqs
def test_search_reports_identity_and_indices():
    rng = np.random.default_rng(3)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    target = "".join(rng.choice(aa, 200))
    hits = mmseqs.search(["".join(rng.choice(aa, 150)), _homolog(rng, target, 20)], [target])
    assert [(h.query, h.target) for h in hits] == [(1, 0)] and 0.8 < hits[0].identity < 1.0
