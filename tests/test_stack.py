"""The ``stack`` family: a disorder model, an optional extra model, a logistic regression per stacked track."""

import json
import shutil

import numpy as np
import pytest

from idrkit.errors import ModelError
from idrkit.models import load_model
from idrkit.models.stack import Stack, fit_logistic, logistic, plddt_features, region_features, window_mean

from .conftest import FIXTURES, run_idrkit


@pytest.fixture
def base_dir(tmp_path):
    """The committed tiny CNN with a third, ``teacher`` head (a copy of its nox row): numpy only."""
    out = tmp_path / "base"
    shutil.copytree(FIXTURES / "tiny_cnn", out)
    doc = json.loads((out / "model.json").read_text())
    with np.load(out / "weights.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["w.out.weight"] = np.vstack([arrays["w.out.weight"], arrays["w.out.weight"][1:2]])
    arrays["w.out.bias"] = np.concatenate([arrays["w.out.bias"], arrays["w.out.bias"][1:2]])
    doc["meta"]["heads"] = ["pdb", "nox", "teacher"]
    doc["shapes"]["w.out.weight"] = list(arrays["w.out.weight"].shape)
    doc["shapes"]["w.out.bias"] = list(arrays["w.out.bias"].shape)
    np.savez(out / "weights.npz", **arrays)
    (out / "model.json").write_text(json.dumps(doc))
    return out


def test_window_mean_matches_a_direct_mean():
    x = np.arange(10, dtype=float) ** 2
    got = window_mean(x, 3)
    padded = np.r_[x[0], x, x[-1]]
    np.testing.assert_allclose(got, [padded[i:i + 3].mean() for i in range(10)])


def test_logistic_regression_learns_a_separable_feature():
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(200, 3)) for _ in range(3)]
    y = [(xi[:, 0] > 0).astype(np.int8) for xi in x]
    y[0][:10] = -1  # unknown labels are ignored
    lr = fit_logistic(x, y, l2=0.1)
    p = logistic(np.concatenate(x), lr)
    assert ((p > 0.5) == (np.concatenate(x)[:, 0] > 0)).mean() > 0.95
    with pytest.raises(ModelError, match="both classes"):
        fit_logistic([x[0]], [np.zeros(200, np.int8)], 1.0)


def test_stack_predicts_saves_and_loads(base_dir, tiny_records, tmp_path):
    base = load_model(base_dir)
    seqs = [r.sequence for r in tiny_records[:12]]
    stack = Stack(base=str(base_dir), l2=1.0).set_parts(base)
    x = stack.features(seqs)
    labels = [(np.asarray(s) > 0.5).astype(np.int8) for s in base.predict_proba(seqs, track="nox")]
    labels[0][0], labels[1][0] = 1, 0  # both classes present whatever the tiny model says
    stack.fit_features("binding", x, labels)
    assert stack.tracks == ("pdb", "nox", "binding")
    # pdb and nox are the base's own scores; binding is the regression of the features
    np.testing.assert_allclose(stack.predict_proba(seqs[:3], track="nox")[0], base.predict_proba(seqs[:3], track="nox")[0])
    lr = {k: stack.arrays[f"lr.binding.{k}"] for k in ("mu", "sd", "beta")}
    got = stack.predict_proba(seqs[:3], track="binding")
    for xi, g in zip(x[:3], got):
        np.testing.assert_allclose(g, logistic(xi, lr), rtol=1e-5)
    assert x[0].shape[1] > 24 + 10  # disorder columns, sequence features and their products with nox
    folder = stack.save(tmp_path / "stack")
    again = load_model(folder)
    assert again.tracks == stack.tracks and (folder / "base" / "model.json").is_file()
    np.testing.assert_allclose(again.predict_proba(seqs[:3], track="binding")[2], got[2], rtol=1e-6)
    with pytest.raises(ModelError, match="no 'linker' track"):
        again.predict_proba(seqs[:1], track="linker")
    from idrkit.predict import describe_model

    info, base_info = describe_model(folder), describe_model(base_dir)
    assert info["parameters"] == base_info["parameters"] + stack.arrays["lr.binding.beta"].size
    assert info["tracks"] == "pdb,nox,binding" and info["size_kb"] >= base_info["size_kb"]
    shutil.rmtree(folder / "base")
    with pytest.raises(ModelError):
        load_model(folder)


def test_a_stack_averages_a_stacked_track_with_its_partner(base_dir, tiny_records, tmp_path):
    """A partner model with a binding track: the stack's binding scores are the mean of the regression's and
    the partner's; the other tracks stay the base's; the partner is saved in partner/ and needed to load."""
    base = load_model(base_dir)
    partner_dir = tmp_path / "partner"
    shutil.copytree(base_dir, partner_dir)
    doc = json.loads((partner_dir / "model.json").read_text())
    doc["meta"]["heads"] = ["pdb", "nox", "binding"]  # its third output read as a binding head
    doc["tracks"] = ["pdb", "nox", "binding"]
    (partner_dir / "model.json").write_text(json.dumps(doc))
    partner = load_model(partner_dir)
    seqs = [r.sequence for r in tiny_records[:10]]
    plain = Stack(base=str(base_dir), l2=1.0).set_parts(base)
    x = plain.features(seqs)
    labels = [(np.asarray(s) > 0.5).astype(np.int8) for s in base.predict_proba(seqs, track="pdb")]
    labels[0][0], labels[1][0] = 1, 0
    plain.fit_features("binding", x, labels)
    paired = Stack(base=str(base_dir), partner=str(partner_dir), l2=1.0).set_parts(base, None, partner)
    paired.fit_features("binding", x, labels)
    want = [(a + b) / 2 for a, b in zip(plain.predict_proba(seqs[:3], track="binding"),
                                        partner.predict_proba(seqs[:3], track="binding"))]
    got = paired.predict_proba(seqs[:3], track="binding")
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-5)
    assert not np.allclose(got[0], plain.predict_proba(seqs[:1], track="binding")[0])
    np.testing.assert_allclose(paired.predict_proba(seqs[:2], track="nox")[1], base.predict_proba(seqs[:2], track="nox")[1])
    assert paired.tracks == ("pdb", "nox", "binding")
    folder = paired.save(tmp_path / "paired")
    np.testing.assert_allclose(load_model(folder).predict_proba(seqs[:3], track="binding")[2], got[2], rtol=1e-6)
    shutil.rmtree(folder / "partner")
    with pytest.raises(ModelError, match="no partner/ folder"):
        load_model(folder)


@pytest.fixture
def plddt_dir(tmp_path):
    """The committed tiny CNN with its second head read as a ``plddt`` track."""
    out = tmp_path / "plddt"
    shutil.copytree(FIXTURES / "tiny_cnn", out)
    doc = json.loads((out / "model.json").read_text())
    doc["meta"]["heads"] = doc["tracks"] = ["pdb", "plddt"]
    doc["meta"]["thresholds"] = {"pdb": 0.45, "plddt": 0.7}
    (out / "model.json").write_text(json.dumps(doc))
    return out


def test_region_and_plddt_features_by_hand():
    nox = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.7])
    r = region_features(nox)
    np.testing.assert_allclose(r[:, 0], np.log(6))
    np.testing.assert_allclose(r[:, 1], nox.mean())
    np.testing.assert_allclose(r[:, 2], 0.5)
    np.testing.assert_allclose(r[:, 3], np.log([2, 2, 1, 1, 1, 1]) * [1, 1, 0, 0, 0, 1])  # disordered runs: 2, 1
    np.testing.assert_allclose(r[:, 4], np.log([1, 1, 3, 3, 3, 1]) * [0, 0, 1, 1, 1, 0])  # the ordered run: 3
    pl = np.array([20.0, 40.0, 90.0, 90.0])
    f = plddt_features(pl)
    np.testing.assert_allclose(f[:, 0], pl / 100)
    np.testing.assert_allclose(f[:, 3], pl / 100 - window_mean(pl / 100, 51))


def test_stack_with_plddt_and_protein_features_reads_its_extra_model(base_dir, plddt_dir, tiny_records, tmp_path):
    base, extra = load_model(base_dir), load_model(plddt_dir)
    seqs = [r.sequence for r in tiny_records[:8]]
    plain = Stack(base=str(base_dir), interactions=False).set_parts(base, extra).features(seqs)
    stack = Stack(base=str(base_dir), extra=str(plddt_dir), interactions=False, plddt=True,
                  protein=True).set_parts(base, extra)
    x = stack.features(seqs)
    assert x[0].shape[1] == plain[0].shape[1] + 5 + 4  # region features, then pLDDT features
    pl = extra.predict_proba(seqs[:1], track="plddt")[0]
    np.testing.assert_allclose(x[0][:, -4:], plddt_features(pl), rtol=1e-6)
    nox = base.predict_proba(seqs[:1], track="nox")[0]
    np.testing.assert_allclose(x[0][:, -9:-4], region_features(nox), rtol=1e-6)
    labels = [(np.arange(len(s)) % 3 == 0).astype(np.int8) for s in seqs]
    stack.fit_features("binding", x, labels)
    again = load_model(stack.save(tmp_path / "stack"))
    assert again.params.plddt and again.params.protein
    np.testing.assert_allclose(again.predict_proba(seqs[:2], track="binding")[1],
                               stack.predict_proba(seqs[:2], track="binding")[1], rtol=1e-6)
    with pytest.raises(ModelError, match="plddt track"):
        Stack(plddt=True).set_parts(base).features(seqs[:1])


def test_stack_needs_a_base_with_three_disorder_heads_and_a_stackable_track(base_dir, tiny_records):
    with pytest.raises(ModelError, match="teacher"):
        Stack().set_parts(load_model(FIXTURES / "tiny_cnn"))
    stack = Stack().set_parts(load_model(base_dir))
    with pytest.raises(ModelError, match="cannot be a stacked track"):
        stack.fit_features("pdb", [np.zeros((3, 2))], [np.array([0, 1, 0])])


def test_stack_fit_on_records_and_cli_prediction(base_dir, tiny_records, tmp_path):
    import copy

    recs = [copy.copy(r) for r in tiny_records[:16]]  # the fixture's records stay as they are
    for r in recs:
        r.track = "linker"
    stack = Stack(base=str(base_dir), interactions=False).fit(recs)
    assert stack.tracks == ("pdb", "nox", "linker")
    folder = stack.save(tmp_path / "stack")
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in recs[:2]))
    proc = run_idrkit("predict", fasta, "--model", folder, "--track", "linker", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") >= 2 and recs[0].id in proc.stdout


def test_idrkit_train_makes_a_stack_with_a_card(base_dir, tiny_records, tmp_path):
    import copy

    from .conftest import write_labelled

    recs = [copy.copy(r) for r in tiny_records[:30]]
    train = write_labelled(tmp_path / "linker.fasta", recs)
    out = tmp_path / "stacked"
    proc = run_idrkit("train", "--model", "stack", "--param", f"base={base_dir}", "--param", "l2=3",
                      "--train", f"linker:{train}", "--out", out, "--no-homology-split")
    assert proc.returncode == 0, proc.stderr
    model = load_model(out)
    assert model.tracks == ("pdb", "nox", "linker") and model.params.l2 == 3.0
    assert "linker" in model.meta["thresholds"] and (out / "card.md").is_file()


def test_one_cnn_pass_gives_every_head_as_separate_passes_do(base_dir, tiny_records):
    base = load_model(base_dir)
    seqs = [r.sequence for r in tiny_records[:9]]
    together = base._predict_heads(seqs, ["pdb", "nox", "teacher"])
    for h in ("pdb", "nox", "teacher"):
        alone = base._predict_index(seqs, base.heads.index(h))
        for t, a in zip(together, alone):
            np.testing.assert_allclose(t[h], a, rtol=1e-6)
