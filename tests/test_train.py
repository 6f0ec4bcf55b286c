"""Training: reading files by track, de-duplication, homology-aware splits, thresholds, model cards."""

import json
import shutil

import numpy as np
import pytest

from idrkit.errors import InputError
from idrkit.records import Record
from idrkit.train import (dedup_key, load_training, parse_train_spec, shared_sequences, split_by_cluster,
                          split_holdout, train_model)

from .conftest import write_labelled


def test_train_specs_name_their_track():
    assert parse_train_spec("nox:a.fasta") == ("nox", "a.fasta")
    assert parse_train_spec("a.fasta") == ("pdb", "a.fasta")
    assert parse_train_spec("C:/data/a.fasta") == ("pdb", "C:/data/a.fasta")


def test_load_training_dedups_by_disprot_accession(tmp_path, tiny_records):
    a = [Record(f"DP0000{i}|x", r.sequence, r.labels) for i, r in enumerate(tiny_records[:3])]
    b = [Record(f"DP0000{i}_other", r.sequence, r.labels) for i, r in enumerate(tiny_records[1:4], 1)]
    records, files = load_training([f"pdb:{write_labelled(tmp_path / 'a.fasta', a)}",
                                    f"pdb:{write_labelled(tmp_path / 'b.fasta', b)}",
                                    f"nox:{tmp_path / 'b.fasta'}"])
    assert [r.id for r in records] == ["DP00000|x", "DP00001|x", "DP00002|x", "DP00003_other",
                                       "DP00001_other", "DP00002_other", "DP00003_other"]
    assert [r.track for r in records] == ["pdb"] * 4 + ["nox"] * 3
    assert [f["kept_after_dedup"] for f in files] == [3, 1, 3] and len(files[0]["sha256"]) == 64
    assert dedup_key("sp|DP01234|x") == "DP01234" and dedup_key("P1") == "P1"


def test_split_by_cluster_balances():
    clusters = [0, 0, 0, 1, 1, 2, 3, 4, 5, 5]
    folds = split_by_cluster(clusters, k=3)
    for c in (0, 1, 5):
        assert len({f for f, cid in zip(folds, clusters) if cid == c}) == 1
    assert sorted(np.bincount(folds).tolist()) == [3, 3, 4]


def test_split_holdout_without_mmseqs(tiny_records):
    train, held = split_holdout(tiny_records, 0.25, homology_split=False)
    assert len(train) + len(held) == 40 and 8 <= len(held) <= 12
    assert not {r.id for r in train} & {r.id for r in held}
    assert split_holdout(tiny_records[:5], 0.5) == (list(tiny_records[:5]), [])


@pytest.mark.skipif(shutil.which("mmseqs") is None, reason="mmseqs2 is not installed")
def test_homology_folds_keep_clusters_together(tiny_records):
    from idrkit.train import homology_folds

    recs = list(tiny_records[:12])
    # exact copies with a changed id must land in the fold of their original
    recs += [Record(r.id + "_copy", r.sequence, r.labels) for r in tiny_records[:6]]
    folds = homology_folds(recs, k=3)
    for i in range(6):
        assert folds[i] == folds[12 + i]
    assert len(set(folds.tolist())) == 3


def test_train_model_writes_card_hashes_and_thresholds(tmp_path, tiny_records):
    pytest.importorskip("torch")
    data = write_labelled(tmp_path / "t.fasta", tiny_records[:30])
    valid = write_labelled(tmp_path / "v.fasta", tiny_records[30:])
    params = {"channels": 8, "layers": 2, "epochs": 1, "progress": False, "checkpoint_dir": str(tmp_path / "ck")}
    model, card = train_model("cnn", [str(data)], tmp_path / "m", valid=valid, params=params, holdout=0.3,
                              homology_split=False)
    assert 0 < card["thresholds"]["pdb"] < 1 and card["holdout_fraction"] == 0.3
    assert card["params"]["checkpoint_dir"] == str(tmp_path / "ck")  # the card records run settings ...
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    assert "checkpoint_dir" not in doc["params"] and "progress" not in doc["params"]  # ... model.json does not
    assert doc["features"]["composition_windows"] == [15, 41, 121]
    assert list(card["validation"]) == ["v.fasta (pdb track)"]
    assert shared_sequences(model, [r.sequence for r in tiny_records]) == list(range(30))
    with pytest.raises(InputError, match="validation sequences are also in the training data"):
        train_model("cnn", [str(data)], tmp_path / "m2", valid=data, params=params, holdout=0)


def test_thresholds_from_out_of_fold_predictions(tmp_path, tiny_records):
    """--threshold-folds K: every labelled protein is predicted once by a fold model that did not see it."""
    pytest.importorskip("torch")
    from idrkit.cli import main

    data = write_labelled(tmp_path / "t.fasta", tiny_records[:30])
    assert main(["train", "--model", "cnn", "--train", f"pdb:{data}", f"nox:{data}", "--out", str(tmp_path / "m"),
                 "--no-homology-split", "--threshold-folds", "3", "--param", "channels=8", "--param", "layers=2",
                 "--param", "epochs=1", "--param", "progress=false"]) == 0
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert "out-of-fold predictions of 3 homology folds" in card["threshold_rule"]
    assert {t: m["proteins"] for t, m in card["threshold_folds"].items()} == {"pdb": 30, "nox": 30}
    assert set(card["thresholds"]) == {"pdb", "nox"} and all(0 < v < 1 for v in card["thresholds"].values())
    assert "## Out-of-fold figures" in (tmp_path / "m" / "card.md").read_text()


def test_calls_threshold_takes_the_best_mcc_on_the_f1_plateau():
    """A threshold whose F1 is within the tolerance of F-max but whose MCC is better wins; with no tolerance
    the rule is plain F-max (calls smoothed as idrkit predict makes them)."""
    from idrkit.metrics import pooled_metrics
    from idrkit.regions import CallOptions, track_calls
    from idrkit.train import calls_threshold

    rng = np.random.default_rng(0)
    labels, scores = [], []
    for _ in range(40):  # disordered stretches of 20-60 residues among order; noisy, overlapping scores
        y = np.zeros(300, dtype=np.int8)
        for start in rng.choice(260, 2, replace=False):
            y[start:start + rng.integers(20, 60)] = 1
        labels.append(y)
        scores.append(np.clip(0.35 + 0.3 * y + rng.normal(0, 0.12, 300).cumsum() * 0.05 + rng.normal(0, 0.15, 300),
                              0, 1))
    grid = np.round(np.arange(0.2, 0.81, 0.01), 2)

    def fig(thr):
        return pooled_metrics(labels, scores, calls=[track_calls(s, CallOptions("pdb"), thr) for s in scores])

    f1 = {float(t): fig(float(t))["f1"] for t in grid}
    fmax_thr = calls_threshold(labels, scores, grid=grid, tolerance=0.0)
    assert f1[fmax_thr] == max(f1.values())
    chosen = calls_threshold(labels, scores, grid=grid)
    assert chosen != fmax_thr  # this data has a plateau where MCC and F1 disagree
    assert f1[chosen] >= max(f1.values()) - 0.005
    plateau = [t for t in f1 if f1[t] >= max(f1.values()) - 0.005]
    assert fig(chosen)["mcc"] == max(fig(t)["mcc"] for t in plateau)
