import numpy as np
import pytest

torch = pytest.importorskip("torch")

from idrkit.models import get_family, load_model  # noqa: E402
from idrkit.metrics import pooled_metrics  # noqa: E402

SMALL = dict(channels=16, layers=2, epochs=3, batch_residues=2048, crop=256, progress=False, lr=5e-3)


@pytest.mark.parametrize("family", ["cnn", "bilstm", "transformer"])
def test_family_fits_saves_loads(family, tiny_records, tmp_path):
    model = get_family(family)(**SMALL).fit(tiny_records[:30], valid=tiny_records[30:])
    seqs = [r.sequence for r in tiny_records[30:]]
    scores = model.predict_proba(seqs)
    assert pooled_metrics([r.labels for r in tiny_records[30:]], scores)["auc"] > 0.75
    model.save(tmp_path / family)
    again = load_model(tmp_path / family)
    for a, b in zip(scores, again.predict_proba(seqs)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert len(model.meta["history"]) >= 1


def test_two_tracks_and_teacher_soft_labels(tiny_records, tmp_path):
    recs = []
    for i, r in enumerate(tiny_records[:30]):
        track = ["pdb", "nox", "teacher"][i % 3]
        labels = r.labels.astype(np.float32) * 0.8 + 0.1 if track == "teacher" else r.labels
        recs.append(type(r)(r.id, r.sequence, labels, track))
    model = get_family("cnn")(**SMALL).fit(recs)
    assert model.tracks == ("pdb", "nox") and model.heads == ["pdb", "nox", "teacher"]
    seqs = [r.sequence for r in tiny_records[30:]]
    pdb, nox = model.predict_proba(seqs, track="pdb"), model.predict_proba(seqs, track="nox")
    assert not np.allclose(np.concatenate(pdb), np.concatenate(nox))
    model.save(tmp_path / "two")
    again = load_model(tmp_path / "two")
    np.testing.assert_allclose(np.concatenate(again.predict_proba(seqs, track="nox")), np.concatenate(nox),
                               atol=1e-6)


def test_transformer_long_sequence_windows(tiny_records):
    model = get_family("transformer")(**{**SMALL, "epochs": 1}).fit(tiny_records[:6])
    long_seq = "".join(r.sequence for r in tiny_records[:3])
    short = tiny_records[3].sequence[:60]
    whole = model.predict_proba([short])[0]
    model.window = 64  # force overlapping windows on the long protein; the short one fits in one
    scores, short_again = model.predict_proba([long_seq, short])
    np.testing.assert_allclose(short_again, whole, atol=1e-6)
    # reference: each window run on its own, merged with weights rising to the window's centre
    module, x = model._torch_module(), model._inputs(long_seq)
    n, w = len(long_seq), 64
    starts = list(range(0, n - w, w // 2)) + [n - w]
    weight = np.minimum(np.arange(1, w + 1), np.arange(w, 0, -1)).astype(np.float64)
    acc, total = np.zeros(n), np.zeros(n)
    with torch.no_grad():
        for s in starts:
            logit = module(torch.from_numpy(x[None, s:s + w]), torch.ones(1, w))[0, :, 0].numpy()
            acc[s:s + w] += logit * weight
            total[s:s + w] += weight
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-acc / total)), atol=1e-5)
    # residues seen by one window only take that window's value
    first = 1 / (1 + np.exp(-module(torch.from_numpy(x[None, :w]), torch.ones(1, w))[0, :, 0].detach().numpy()))
    np.testing.assert_allclose(scores[:w // 2], first[:w // 2], atol=1e-5)


def test_fine_tuning_a_distilled_student_starts_from_its_teacher_head(tiny_records, tmp_path):
    soft = [type(r)(r.id, r.sequence, r.labels.astype(np.float32) * 0.8 + 0.1, "teacher") for r in tiny_records[:20]]
    student = get_family("cnn")(**{**SMALL, "epochs": 2}).fit(soft)
    assert student.heads == ["teacher"]
    student.save(tmp_path / "student")
    # zero epochs of fine-tuning: the new pdb and nox heads must equal the teacher head they started from
    tuned = get_family("cnn")(**{**SMALL, "epochs": 0, "init_from": str(tmp_path / "student")})
    labelled = [type(r)(r.id, r.sequence, r.labels, "pdb" if i % 2 else "nox") for i, r in enumerate(tiny_records[20:30])]
    tuned.fit(labelled)
    assert tuned.heads == ["pdb", "nox"]
    seqs = [r.sequence for r in tiny_records[30:]]
    ref = np.concatenate(student.predict_proba(seqs))
    for track in ("pdb", "nox"):
        np.testing.assert_allclose(np.concatenate(tuned.predict_proba(seqs, track=track)), ref, atol=1e-5)


def test_warm_started_model_card_names_its_start(cnn_dir, tiny_labelled_file, tmp_path):
    import json

    from idrkit.train import file_sha256, train_model

    train_model("cnn", [str(tiny_labelled_file)], tmp_path / "ft", holdout=0,
                params={"channels": 8, "layers": 2, "epochs": 1, "progress": False, "init_from": str(cnn_dir)})
    card = json.loads((tmp_path / "ft" / "card.json").read_text())
    assert card["started_from"]["path"] == str(cnn_dir)
    assert card["started_from"]["weights_sha256"] == file_sha256(cnn_dir / "weights.npz")
    assert "Started from" in (tmp_path / "ft" / "card.md").read_text()
    assert load_model(tmp_path / "ft").meta["started_from"]["path"] == str(cnn_dir)


def test_function_tracks_train_predict_save_and_load(tiny_records, tmp_path):
    """binding and linker learn from their own labels, plddt from soft targets; all on one trunk."""
    from idrkit.cli import main

    recs = []
    for i, r in enumerate(tiny_records[:36]):
        track = ["pdb", "nox", "binding", "linker", "plddt"][i % 5]
        labels = (0.3 + 0.6 * (r.labels > 0)).astype(np.float32) if track == "plddt" else r.labels
        recs.append(type(r)(r.id, r.sequence, labels, track))
    model = get_family("cnn")(**SMALL).fit(recs)
    assert model.tracks == ("pdb", "nox", "binding", "linker", "plddt")
    seqs = [r.sequence for r in tiny_records[36:]]
    plddt = model.predict_proba(seqs, track="plddt")
    assert all(((p >= 0) & (p <= 100)).all() for p in plddt) and np.concatenate(plddt).max() > 1.5
    binding = model.predict_proba(seqs, track="binding")
    assert pooled_metrics([r.labels for r in tiny_records[36:]], binding)["auc"] > 0.7
    # pLDDT calls mark low confidence: below the threshold (0.7 by default) times 100
    calls = model.predict(seqs[:1], track="plddt", min_length=0, max_gap=0)[0]
    np.testing.assert_array_equal(calls, (plddt[0] <= 70).astype(np.uint8))
    model.save(tmp_path / "f")
    again = load_model(tmp_path / "f")
    for track in model.tracks:
        np.testing.assert_allclose(np.concatenate(again.predict_proba(seqs, track=track)),
                                   np.concatenate(model.predict_proba(seqs, track=track)), atol=1e-5)
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in tiny_records[36:]))
    assert main(["predict", str(fasta), "-o", str(tmp_path / "b.tsv"), "--model", str(tmp_path / "f"),
                 "--track", "binding"]) == 0
    text = (tmp_path / "b.tsv").read_text()
    assert "track=binding" in text.splitlines()[0]
    assert main(["predict", str(fasta), "-o", str(tmp_path / "p.summary"), "--model", str(tmp_path / "f"),
                 "--track", "plddt"]) == 0
    assert main(["predict", str(fasta), "-o", str(tmp_path / "x.tsv"), "--track", "binding"]) == 2  # the default


def test_plddt_teacher_is_learnt_as_the_plddt_track(tiny_records, tmp_path, monkeypatch):
    import idrkit.teachers as teachers
    from idrkit.train import teacher_records

    fasta = tmp_path / "u.fasta"
    fasta.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in tiny_records[:4]))
    monkeypatch.setattr(teachers, "teacher_scores", lambda name, seqs: [np.full(len(s), 80.0) for s in seqs])
    recs, files = teacher_records("metapredict-plddt", [fasta])
    assert {r.track for r in recs} == {"plddt"} and files[0]["track"] == "plddt"
    assert all(np.allclose(r.labels, 0.8) for r in recs)
    recs, files = teacher_records("metapredict-v3", [fasta])
    assert {r.track for r in recs} == {"teacher"}


def test_bilstm_numpy_prediction_equals_the_torch_module(tiny_records):
    """Two LSTM layers, sequences of different lengths in one batch: numpy gives torch's numbers."""
    model = get_family("bilstm")(channels=8, layers=8, epochs=1, batch_residues=100_000, progress=False)
    model.fit(tiny_records[:12])
    assert model.params.layers // 4 == 2
    seqs = [r.sequence for r in tiny_records[12:20]]
    numpy_scores = model.predict_proba(seqs, track="pdb")
    module = model._torch_module()
    for s, got in zip(seqs, numpy_scores):
        x = torch.from_numpy(model._inputs(s)[None].astype(np.float32))
        with torch.no_grad():
            want = torch.sigmoid(module(x, torch.ones(1, len(s)))[0, :, 0]).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("mid", [False, True])
def test_recurrent_cnn_numpy_prediction_equals_the_torch_module(tiny_records, tmp_path, mid):
    """The chunk recurrence (a BiLSTM over 4-residue chunk means; with ``recurrent_mid`` a second one after
    the middle layer) predicts with numpy as torch does, for sequences shorter than a chunk, of whole
    chunks and of a partial last chunk; it survives save/load."""
    model = get_family("cnn")(channels=8, layers=4, recurrent=4, recurrent_mid=mid, epochs=1,
                              batch_residues=100_000, progress=False)
    model.fit(tiny_records[:12])
    module = model._torch_module()
    assert (module.mid == 1) if mid else module.mid is None
    with torch.no_grad():  # a zero-initialised output projection would hide the recurrence: give it weights
        for out in [module.rec_out] + ([module.rec_mid_out] if mid else []):
            out.weight.normal_(0, 0.5)
            out.bias.normal_(0, 0.5)
    model._store(module)
    seqs = [tiny_records[12].sequence[:3], tiny_records[13].sequence[:8], tiny_records[14].sequence[:13]] + [
        r.sequence for r in tiny_records[15:20]]
    model.save(tmp_path / "m")
    numpy_scores = load_model(tmp_path / "m").predict_proba(seqs, track="pdb")
    silent = load_model(tmp_path / "m")  # the same model with the recurrence's output switched off
    silent.arrays["w.rec_out.weight"] = np.zeros_like(silent.arrays["w.rec_out.weight"])
    silent.arrays["w.rec_out.bias"] = np.zeros_like(silent.arrays["w.rec_out.bias"])
    without = silent.predict_proba(seqs, track="pdb")
    if mid:  # the middle recurrence alone changes the scores too
        no_mid = load_model(tmp_path / "m")
        for k in ("w.rec_mid_out.weight", "w.rec_mid_out.bias"):
            no_mid.arrays[k] = np.zeros_like(no_mid.arrays[k])
        for got, other in zip(numpy_scores, no_mid.predict_proba(seqs, track="pdb")):
            assert np.abs(got - other).max() > 1e-3
    for s, got, other in zip(seqs, numpy_scores, without):
        x = torch.from_numpy(model._inputs(s)[None].astype(np.float32))
        with torch.no_grad():
            want = torch.sigmoid(module(x, torch.ones(1, len(s)))[0, :, 0]).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert np.abs(got - other).max() > 1e-3  # the recurrence changes the scores


def test_recurrent_size_is_checked():
    from idrkit.errors import ModelError

    with pytest.raises(ModelError, match="params.recurrent"):
        get_family("cnn")(recurrent=-1).params.check("model.json")
    with pytest.raises(ModelError, match="params.recurrent_mid"):
        get_family("cnn")(recurrent_mid=True).params.check("model.json")  # no chunk size
