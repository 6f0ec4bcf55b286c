"""The estimator convention: model.json (checked field by field), the feature specification, thresholds."""

import json
import shutil

import numpy as np
import pytest

from idrkit.errors import ModelError
from idrkit.models import load_model
from idrkit.models.base import model_params, resolve_threshold


@pytest.fixture
def model_copy(cnn_dir, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(cnn_dir, out)
    return out


def edit(folder, change):
    doc = json.loads((folder / "model.json").read_text())
    change(doc)
    (folder / "model.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format_version="2"), "field 'format_version' must be a whole number"),
    (lambda d: d.update(format_version=99), "model format 99 is newer"),
    (lambda d: d.update(params=[1, 2]), "field 'params' must be an object"),
    (lambda d: d["params"].update(dilations=[]), "field 'params.dilations' must be a non-empty list"),
    (lambda d: d["params"].update(channels="8"), "field 'params.channels' should be a int"),
    (lambda d: d["params"].update(layers=0), "field 'params.layers' must be at least 1"),
    (lambda d: d.update(tracks="pdb"), "field 'tracks' must be a list"),
    (lambda d: d.pop("family"), "field 'family' is missing"),
    (lambda d: d["shapes"].update({"w.inp.bias": "8"}), "field 'shapes.w.inp.bias' must be a list of sizes"),
    (lambda d: d["features"].update(version=7), "features of version 7"),
    (lambda d: d["features"].update(scales_digest="0" * 16), "other physico-chemical scales"),
    (lambda d: d["features"].update(composition_windows=[15, "x"]), "field 'features.composition_windows'"),
    (lambda d: d.pop("features"), "field 'features' is missing"),
])
def test_badly_typed_model_json_is_one_clear_error(model_copy, change, message):
    edit(model_copy, change)
    with pytest.raises(ModelError, match=message) as err:
        load_model(model_copy)
    assert str(model_copy) in str(err.value)


def test_model_json_that_is_not_an_object(model_copy):
    (model_copy / "model.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="must hold a JSON object, not a list"):
        load_model(model_copy)


def test_saved_feature_spec_is_used_not_the_code_default(model_copy, tiny_records):
    seqs = [r.sequence for r in tiny_records[:3]]
    before = load_model(model_copy).predict_proba(seqs)
    edit(model_copy, lambda d: d["features"].update(composition_windows=[15, 41, 61]))
    changed = load_model(model_copy)
    assert changed.spec.composition_windows == [15, 41, 61]
    assert not np.allclose(np.concatenate(changed.predict_proba(seqs)), np.concatenate(before))


def test_run_settings_stay_out_of_model_json(model_copy):
    model = load_model(model_copy)
    model.params.checkpoint_dir, model.params.init_from = "/tmp/ck", "/tmp/start"
    model.save(model_copy)
    doc = json.loads((model_copy / "model.json").read_text())
    assert {"checkpoint_dir", "init_from", "progress"}.isdisjoint(doc["params"])
    assert "channels" in model_params(model.params)


def test_one_threshold_resolver(cnn_dir):
    model = load_model(cnn_dir)
    assert resolve_threshold(model, "pdb") == 0.45 and resolve_threshold(model, "nox") == 0.55
    assert resolve_threshold(model, "pdb", 0.2) == 0.2
    model.meta["thresholds"] = {}
    assert resolve_threshold(model, "pdb") == 0.5
