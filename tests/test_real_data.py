"""Readers on the real data files (skipped where the data folder is not beside the repository)."""

import numpy as np
import pytest

from idrkit.io import read_records
from idrkit.train import load_training

from .conftest import need_data


@pytest.mark.parametrize("name, proteins, ones, zeros, unknown", [
    ("train_disorder_pdb.fasta", 1751, 179_906, 370_814, 269_364),
    ("caid1_disorder_pdb.fasta", 510, 43_678, 94_201, 109_205),
    ("train_disprot_nox.fasta", 2033, 184_465, 807_228, 5_975),
    ("caid2_disorder_pdb.fasta", 348, 37_072, 93_805, 156_143),
])
def test_labelled_files_match_their_documented_counts(name, proteins, ones, zeros, unknown):
    recs = read_records(need_data(name), require_labels=True)
    labels = np.concatenate([r.labels for r in recs])
    assert len(recs) == proteins
    assert ((labels == 1).sum(), (labels == 0).sum(), (labels == -1).sum()) == (ones, zeros, unknown)


def test_dedup_by_disprot_accession_across_pdb_files():
    records, files = load_training([f"pdb:{need_data('train_disorder_pdb.fasta')}",
                                    f"pdb:{need_data('caid1_disorder_pdb.fasta')}"])
    assert files[0]["kept_after_dedup"] == 1751
    assert files[1]["kept_after_dedup"] < 510  # caid1 is mostly inside the newer training file
    assert len(records) == 1751 + files[1]["kept_after_dedup"]
