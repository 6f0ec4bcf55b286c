import numpy as np
import pytest

from idrkit.errors import ModelError
from idrkit.metrics import pooled_metrics
from idrkit.models import FAMILIES, get_family, load_model


def _auc(model, records):
    scores = model.predict_proba([r.sequence for r in records])
    return pooled_metrics([r.labels for r in records], scores)["auc"]


def _round_trip(model, records, tmp_path):
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    seqs = [r.sequence for r in records]
    a, b = model.predict_proba(seqs), again.predict_proba(seqs)
    assert all(x.shape == (len(s),) for x, s in zip(a, seqs))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-6)
    return again


def test_w2v_nb_learns_and_round_trips(tiny_records, tmp_path):
    pytest.importorskip("gensim")
    model = get_family("w2v-nb")(vector_size=16, epochs=3).fit(tiny_records[:30])
    assert _auc(model, tiny_records[30:]) > 0.8
    _round_trip(model, tiny_records[30:], tmp_path)


def test_registry_and_unknown_family():
    assert {"w2v-nb", "gbdt", "cnn", "bilstm", "transformer", "ensemble"} <= set(FAMILIES)
    with pytest.raises(ModelError, match="unknown model family 'nope'"):
        get_family("nope")


def test_untrained_model_refuses_to_predict():
    with pytest.raises(ModelError, match="not trained"):
        get_family("w2v-nb")().predict_proba(["MKV"])


def test_load_checks_shapes(tiny_records, tmp_path):
    pytest.importorskip("gensim")
    model = get_family("w2v-nb")(vector_size=8, epochs=1).fit(tiny_records[:10])
    model.save(tmp_path / "m")
    import json

    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    doc["shapes"]["vectors"] = [3, 3]
    (tmp_path / "m" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="weight 'vectors' is missing or has the wrong shape"):
        load_model(tmp_path / "m")


def test_gbdt_learns_and_round_trips(tiny_records, tmp_path):
    pytest.importorskip("lightgbm")
    model = get_family("gbdt")(n_estimators=40, num_leaves=15, min_child_samples=20, threads=1)
    model.fit(tiny_records[:30], valid=tiny_records[30:])
    assert _auc(model, tiny_records[30:]) > 0.85
    again = _round_trip(model, tiny_records[30:], tmp_path)
    assert again.arrays["booster"].dtype == np.uint8  # LightGBM's text model inside the npz, no pickle


def test_ensemble_mean_and_stack(tiny_records, tmp_path):
    pytest.importorskip("gensim")
    from idrkit.models.w2v_nb import Word2VecNB

    w2v = Word2VecNB(vector_size=8, epochs=2).fit(tiny_records[:30])
    w2v.save(tmp_path / "w2v")
    mean = get_family("ensemble")(members=[str(tmp_path / "w2v"), "w2v-nb"]).fit(tiny_records[:30])
    seqs = [r.sequence for r in tiny_records[30:]]
    parts = [m.predict_proba(seqs) for m in mean.members]
    for got, a, b in zip(mean.predict_proba(seqs), *parts):
        np.testing.assert_allclose(got, (a + b) / 2, atol=1e-6)
    _round_trip(mean, tiny_records[30:], tmp_path / "mean")
    stack = get_family("ensemble")(members=[str(tmp_path / "w2v"), "w2v-nb"], mode="stack")
    stack.fit(tiny_records[:25], valid=tiny_records[25:32])
    assert stack.arrays["weights"].shape == (2,)
    assert _auc(stack, tiny_records[32:]) > 0.8
    with pytest.raises(ModelError, match="stacking needs held-out labelled records"):
        get_family("ensemble")(members=[str(tmp_path / "w2v")], mode="stack").fit(tiny_records[:5])
