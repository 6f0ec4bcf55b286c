import numpy as np
import pytest
from sklearn import metrics as skm

from idrkit.metrics import (average_precision, bootstrap, competition_f1, confusion, match, per_protein,
                            pooled_metrics, roc_auc)


@pytest.fixture
def random_set():
    rng = np.random.default_rng(3)
    labels, scores = [], []
    for _ in range(20):
        n = int(rng.integers(20, 200))
        y = (rng.random(n) < 0.3).astype(np.int8)
        s = np.round(np.clip(y * 0.3 + rng.random(n) * 0.8, 0, 1), 2)  # rounding makes ties
        y[rng.random(n) < 0.1] = -1
        labels.append(y)
        scores.append(s)
    return labels, scores


def test_pooled_metrics_match_sklearn(random_set):
    labels, scores = random_set
    m = pooled_metrics(labels, scores, threshold=0.5)
    y = np.concatenate(labels)
    s = np.concatenate(scores)
    keep = y >= 0
    y, s = y[keep], s[keep]
    c = s >= 0.5
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert m["ap"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, c), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y, c), abs=1e-12)
    assert m["precision"] == pytest.approx(skm.precision_score(y, c), abs=1e-12)
    assert m["recall"] == pytest.approx(skm.recall_score(y, c), abs=1e-12)
    assert m["bacc"] == pytest.approx(skm.balanced_accuracy_score(y, c), abs=1e-12)
    prec, rec, thr = skm.precision_recall_curve(y, s)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-300), 0)
    assert m["fmax"] == pytest.approx(f1.max(), abs=1e-12)
    assert m["fmax_threshold"] == pytest.approx(thr[np.argmax(f1[:-1])])
    assert m["residues"] == keep.sum()


def test_hand_made_cases():
    y = np.array([1, 1, 0, 0])
    assert roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert roc_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    # one positive ranked first, one below a negative: precision 1 at recall .5, 2/3 at recall 1
    assert average_precision(y, np.array([0.9, 0.4, 0.5, 0.1])) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    c = confusion(np.array([1, 1, 0, 0, 0]), np.array([1, 0, 1, 0, 0]))
    assert c["precision"] == 0.5 and c["recall"] == 0.5 and c["specificity"] == pytest.approx(2 / 3)
    assert c["mcc"] == pytest.approx((1 * 2 - 1 * 1) / np.sqrt(2 * 2 * 3 * 3))


def test_unknown_residues_are_excluded():
    y = np.array([1, -1, 0])
    assert roc_auc(y, np.array([0.9, 0.0, 0.1])) == 1.0
    assert competition_f1([np.array([1, -1, 0, 1])], [np.array([1, 1, 0, 0])]) == pytest.approx(2 / 3)


def test_per_protein_and_bootstrap(random_set):
    labels, scores = random_set
    calls = [s >= 0.5 for s in scores]
    rows = per_protein(labels, scores, calls)
    assert len(rows) == 20 and all(0 <= r["auc"] <= 1 for r in rows if not np.isnan(r["auc"]))
    ci = bootstrap(labels, scores, n=50)
    m = pooled_metrics(labels, scores)
    for k in ("auc", "ap", "f1", "mcc"):
        lo, hi = ci[k]
        assert lo <= m[k] <= hi and hi - lo < 0.3
    # calls given explicitly: the same intervals as thresholding at 0.5; other calls, other F1
    assert bootstrap(labels, scores, n=50, calls=calls) == ci
    flipped = [~c for c in calls]
    assert bootstrap(labels, scores, n=50, calls=flipped)["f1"] != ci["f1"]
    assert pooled_metrics(labels, scores, calls=flipped)["f1"] != m["f1"]


def test_match_takes_scores_and_calls():
    from idrkit.io.predictions import PredictedResidues
    from idrkit.records import Record

    refs = {"a": Record("a", "MKV", np.array([1, 0, 0])), "b": Record("b", "MK", np.array([0, 1]))}
    with_calls = {"a": PredictedResidues(np.array([0.9, 0.1, 0.2]), np.array([1, 0, 0])),
                  "b": PredictedResidues(np.array([0.3, 0.6]), np.array([0, 1]))}
    ids, labels, scores, calls = match(refs, with_calls)
    assert ids == ["a", "b"] and calls[1].tolist() == [0, 1]
    with_calls["b"] = PredictedResidues(np.array([0.3, 0.6]))
    assert match(refs, with_calls)[3] is None  # one protein without calls: scores must be thresholded
    assert match(refs, {"a": np.zeros(3), "b": np.ones(2)})[3] is None


def test_length_mismatch_names_record():
    from idrkit.errors import InputError

    with pytest.raises(InputError, match="record 'b'"):
        pooled_metrics([np.array([1, 0]), np.array([1])], [np.array([0.2, 0.1]), np.array([0.1, 0.2])],
                       ids=["a", "b"])


def test_paired_bootstrap_of_two_predictors(random_set):
    from idrkit.metrics import paired_bootstrap

    labels, scores = random_set
    same = paired_bootstrap(labels, scores, scores, n=50)
    assert same["auc"]["diff"] == 0 and same["auc"]["low"] == 0 and same["auc"]["high"] == 0
    rng = np.random.default_rng(3)
    # adding noise to the scores makes a worse predictor: the original wins in (nearly) every resampling
    worse = [s + rng.normal(0, 0.5, s.size) for s in scores]
    d = paired_bootstrap(labels, scores, worse, n=50)
    assert d["auc"]["diff"] > 0 and d["auc"]["low"] > 0 and d["auc"]["a_higher"] > 0.95
    assert d["auc"]["diff"] == pytest.approx(pooled_metrics(labels, scores)["auc"] - pooled_metrics(labels, worse)["auc"])
