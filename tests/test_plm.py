import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from idrkit.cli import main  # noqa: E402
from idrkit.cache import ArrayCache  # noqa: E402
from idrkit.features.embeddings import backbone_fingerprint, window_spans  # noqa: E402
from idrkit.models import get_family, load_model  # noqa: E402

from .conftest import write_labelled  # noqa: E402
from .tiny_models import tiny_esm  # noqa: E402


@pytest.fixture(scope="module")
def esm_dir(tmp_path_factory):
    return tiny_esm(tmp_path_factory.mktemp("esm") / "tiny-esm")


@pytest.fixture
def small_file(tmp_path, tiny_records):
    return write_labelled(tmp_path / "small.fasta", tiny_records[:12])


def test_alignment_with_rare_residues_and_long_sequences(esm_dir, tiny_records, tmp_path, monkeypatch):
    monkeypatch.setenv("IDRKIT_CACHE", str(tmp_path / "cache"))
    model = get_family("plm")(backbone=str(esm_dir), mode="frozen", epochs=1, progress=False, batch_size=4)
    model.fit(tiny_records[:6])
    assert model.window == 62  # the tiny backbone's 66 positions, less special tokens and a margin
    odd = "MKJBZUOX" * 20  # 160 residues: rare letters, and longer than one window
    scores = model.predict_proba([odd, "MKV", tiny_records[7].sequence])
    assert [s.shape[0] for s in scores] == [160, 3, len(tiny_records[7].sequence)]
    assert all(np.isfinite(s).all() for s in scores)
    # J has no ESM token and goes to X; windows overlap and the merge is centre-weighted
    emb = model._embedder
    ids = emb.token_ids("JX")
    assert ids[0] == ids[1] == emb.tokenizer.get_vocab()["X"]
    spans = window_spans(160, model.window)
    assert spans == [(0, 62), (31, 93), (62, 124), (93, 155), (98, 160)]
    # the merged embedding is the centre-weighted mean of the windows' own hidden states
    merged = emb.embed([odd])[0].detach().numpy()
    with torch.no_grad():
        parts = [h.numpy() for h in emb._embed_batch([emb.token_ids(odd[a:b]) for a, b in spans])]
    weight = np.minimum(np.arange(1, 63), np.arange(62, 0, -1)).astype(np.float64)[:, None]
    acc, total = np.zeros_like(merged, dtype=np.float64), np.zeros((160, 1))
    for (a, b), h in zip(spans, parts):
        acc[a:b] += h * weight
        total[a:b] += weight
    np.testing.assert_allclose(merged, acc / total, atol=1e-5)
    np.testing.assert_allclose(merged[:31], parts[0][:31], atol=1e-5)  # covered by the first window only


def test_frozen_embeddings_are_cached(esm_dir, tiny_records, tmp_path, monkeypatch):
    monkeypatch.setenv("IDRKIT_CACHE", str(tmp_path / "cache"))
    model = get_family("plm")(backbone=str(esm_dir), mode="frozen", epochs=1, progress=False)
    model.fit(tiny_records[:4])
    shards = list((tmp_path / "cache").rglob("*.npz"))
    assert shards, "frozen embeddings were not cached"
    cache = ArrayCache(f"plm-{esm_dir.name}-{backbone_fingerprint(model._embedder.backbone)}")
    assert cache.get(tiny_records[0].sequence).shape == (len(tiny_records[0].sequence), 32)


@pytest.mark.parametrize("mode", ["frozen", "lora", "finetune"])
def test_cli_train_save_load_predict(mode, esm_dir, small_file, tmp_path, monkeypatch):
    monkeypatch.setenv("IDRKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / f"plm-{mode}"
    assert main(["train", "--model", "plm", "--train", str(small_file), "--out", str(out),
                 "--no-homology-split", "--param", f"backbone={esm_dir}", "--param", f"mode={mode}",
                 "--param", "epochs=2", "--param", "progress=false"]) == 0
    if mode == "lora":
        assert (out / "adapter" / "adapter_config.json").exists()
        import json

        cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
        assert cfg["r"] == 8 and cfg["lora_alpha"] == 32 and cfg["lora_dropout"] == 0.1
    if mode == "finetune":
        assert (out / "backbone" / "model.safetensors").exists()
    pred = tmp_path / "pred.tsv"
    assert main(["predict", str(small_file), "-o", str(pred), "--model", str(out)]) == 0
    first = load_model(out).predict_proba(["MKVLAAEEPKSSPQ"])[0]
    second = load_model(out).predict_proba(["MKVLAAEEPKSSPQ"])[0]
    np.testing.assert_allclose(first, second, atol=1e-5)
    assert main(["evaluate", "--ref", str(small_file), str(pred)]) == 0


def test_lora_changes_only_adapters(esm_dir, tiny_records, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModel

    monkeypatch.setenv("IDRKIT_CACHE", str(tmp_path / "cache"))
    model = get_family("plm")(backbone=str(esm_dir), mode="lora", epochs=1, progress=False, lr=1e-2)
    model.fit(tiny_records[:6])
    base = AutoModel.from_pretrained(str(esm_dir), add_pooling_layer=False).state_dict()
    tuned = model._embedder.backbone.state_dict()
    lora_keys = [k for k in tuned if "lora_" in k]
    assert lora_keys
    for key, value in base.items():
        match = [k for k in tuned if k.endswith(key) and "lora_" not in k]
        if match:
            name = match[0]
            assert torch.allclose(tuned[name].cpu(), value), f"{key} changed under LoRA"
