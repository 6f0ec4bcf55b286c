"""Torch-free CNN inference: packing many sequences, threads, and agreement with the torch module."""

import numpy as np
import pytest

from idrkit.models import get_family, load_model
from idrkit.models.cnn_numpy import context_layers, layer_norm, parallel_chunks, residue_chunks

SMALL = dict(channels=16, layers=2, epochs=1, batch_residues=2048, crop=256, progress=False, lr=5e-3)


def test_layer_norm_matches_the_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    w, b = rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32)
    ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(layer_norm(x, w, b), ref, atol=1e-5)


def test_context_layers_end_each_cycle_of_dilations():
    class P:
        context, layers, dilations = True, 7, [1, 2, 4]

    assert context_layers(P) == [2, 5, 6]
    P.context = False
    assert context_layers(P) == []


def test_chunks_and_threads_keep_order(monkeypatch):
    seqs = ["M" * n for n in (5, 3, 9, 2, 7, 1)]
    assert [len(c) for c in residue_chunks(seqs, 8)] == [2, 1, 2, 1]
    monkeypatch.setenv("IDRKIT_THREADS", "3")
    out = parallel_chunks(seqs, lambda chunk: [np.full(len(s), len(s)) for s in chunk], max_residues=8)
    assert [a.tolist() for a in out] == [[n] * n for n in (5, 3, 9, 2, 7, 1)]


def test_committed_tiny_cnn_predicts_packed_like_one_by_one(cnn_dir, tiny_records):
    model = load_model(cnn_dir)
    seqs = [r.sequence for r in tiny_records[:12]] + ["M", "MK"]
    for track in ("pdb", "nox"):
        batch = model.predict_proba(seqs, track=track)
        for s, b in zip(seqs, batch):
            np.testing.assert_allclose(model.predict_proba([s], track=track)[0], b, atol=1e-6)


@pytest.mark.parametrize("context", [False, True])
def test_cnn_numpy_inference_equals_torch_and_batching(tiny_records, context):
    torch = pytest.importorskip("torch")
    model = get_family("cnn")(**{**SMALL, "epochs": 1, "layers": 3, "dilations": [1, 2], "context": context}
                              ).fit(tiny_records[:10])
    if context:  # the per-protein mean after layers 2 and 3 (the end of each cycle of dilations)
        assert sum(k.startswith("w.ctxs.") and k.endswith(".weight") for k in model.arrays) == 2
    seqs = [r.sequence for r in tiny_records[:8]]
    batch = model.predict_proba(seqs)
    module = model.build(model.arrays["feature_mean"].size, len(model.heads))
    module.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in model.arrays.items() if k.startswith("w.")})
    module.eval()
    with torch.no_grad():
        for s, b in zip(seqs, batch):
            x = torch.from_numpy(model._inputs(s)[None])
            ref = torch.sigmoid(module(x, torch.ones(1, len(s))))[0, :, 0].numpy()
            np.testing.assert_allclose(b, ref, atol=1e-5)
            np.testing.assert_allclose(model.predict_proba([s])[0], b, atol=1e-6)


def test_shipped_models_numpy_forward_equals_torch(tiny_records):
    """The fast and default models: numpy inference equals the torch module they were trained as."""
    torch = pytest.importorskip("torch")
    from idrkit.predict import get_model

    seqs = [r.sequence for r in tiny_records[:5]] + ["M", "MKVLAAEEPKSSPQ" * 40]
    for name in ("fast", "default"):
        model = get_model(name)
        module = model._torch_module()
        for track in ("pdb", "nox"):
            batch = model.predict_proba(seqs, track=track)
            head = model.heads.index(track)
            with torch.no_grad():
                for s, b in zip(seqs, batch):
                    ref = torch.sigmoid(module(torch.from_numpy(model._inputs(s)[None]), torch.ones(1, len(s))))
                    np.testing.assert_allclose(b, ref[0, :, head].numpy(), atol=1e-5)


def test_fast_model_has_at_least_4x_fewer_multiply_adds_than_the_default():
    from idrkit.predict import get_model

    def macs(model):
        p = model.params
        return model.arrays["w.inp.weight"].size + p.layers * p.channels ** 2 * p.kernel + model.arrays["w.out.weight"].size

    assert macs(get_model("default")) >= 4 * macs(get_model("fast"))
