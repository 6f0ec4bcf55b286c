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
