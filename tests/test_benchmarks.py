"""The students benchmark end to end on tiny synthetic data, with a trained tiny model as the teacher."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from .conftest import write_labelled  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _students_without_mmseqs(monkeypatch):
    """The students module with folds and held-out splits of one cluster per protein.

    MMseqs2 clustering is tested elsewhere; this keeps the benchmark tests fast and mmseqs-free.
    """
    from idrkit import train

    students = _load("students")
    monkeypatch.setattr(students, "homology_folds", lambda recs, k, seed: train.homology_folds(
        recs, k=k, seed=seed, use_mmseqs=False))
    split = train.split_holdout
    monkeypatch.setattr(train, "split_holdout", lambda recs, frac, seed=0, homology_split=True: split(
        recs, frac, seed, homology_split=False))
    return students


def test_students_table_trains_every_recipe_and_reuses_models(tiny_records, cnn_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IDRKIT_CACHE", str(tmp_path / "cache"))
    pdb = write_labelled(tmp_path / "pdb.fasta", tiny_records[:20])
    nox = write_labelled(tmp_path / "nox.fasta", tiny_records[20:36])
    unl = tmp_path / "unl.fasta"
    unl.write_text("".join(f">u{r.id}\n{r.sequence}\n" for r in tiny_records[:30]))
    valid = write_labelled(tmp_path / "valid.fasta", tiny_records[36:])
    args = ["--families", "cnn", "transformer", "--folds", "2", "--work", str(tmp_path / "work"), "--ensemble",
            "--train", f"pdb:{pdb}", f"nox:{nox}", "--valid", str(valid), "--unlabelled", str(unl),
            "--teacher", str(cnn_dir), "--no-baselines", "--json", str(tmp_path / "rows.json"),
            "--set", "epochs=1", "channels=8", "layers=2", "crop=128", "max_steps_per_epoch=1"]
    students = _students_without_mmseqs(monkeypatch)
    assert students.main(args) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    names = [r["predictor"] for r in rows]
    assert names[:4] == ["cnn supervised", "cnn distilled", "cnn distil+ft", "cnn distil+joint"]
    assert "mean distil+ft" in names and len(names) == 12
    # every NOX protein is scored exactly once, by the model that did not train on it
    assert all(r["nox_proteins"] == 16 for r in rows)
    for r in rows:
        assert 0 <= r["pdb_auc"] <= 1 and 0 <= r["nox_auc"] <= 1
    work = tmp_path / "work"
    assert (work / "cnn-distilled" / "model.json").exists() and (work / "cnn-distil+ft-fold1" / "model.json").exists()
    # a second run reuses the trained models and prints the same figures
    capsys.readouterr()
    assert students.main(args) == 0
    again = json.loads((tmp_path / "rows.json").read_text())
    assert [round(r["nox_auc"], 6) for r in again] == [round(r["nox_auc"], 6) for r in rows]
    assert "training" not in capsys.readouterr().err


def test_students_table_scores_models_trained_elsewhere_without_leaks(tiny_records, tmp_path, monkeypatch):
    """--model rows: nox columns only for a model that never saw the NOX proteins; no validation overlap."""
    from idrkit.errors import InputError
    from idrkit.train import train_model

    write = write_labelled

    pdb, nox = write(tmp_path / "pdb.fasta", tiny_records[:20]), write(tmp_path / "nox.fasta", tiny_records[20:36])
    valid = write(tmp_path / "valid.fasta", tiny_records[36:])
    small = {"epochs": 1, "channels": 8, "layers": 2, "progress": False}
    models = {}
    for name, specs in {"clean": [f"pdb:{pdb}", f"nox:{pdb}"], "pdb-only": [f"pdb:{pdb}"], "with-nox": [f"pdb:{pdb}", f"nox:{nox}"],
                        "with-valid": [f"pdb:{valid}"]}.items():
        train_model("cnn", specs, tmp_path / name, params=small, holdout=0, homology_split=False)
        models[name] = str(tmp_path / name)
    students = _students_without_mmseqs(monkeypatch)
    args = ["--folds", "2", "--recipes", "supervised", "--families", "cnn", "--work", str(tmp_path / "work"),
            "--train", f"pdb:{pdb}", f"nox:{nox}", "--valid", str(valid), "--unlabelled", str(valid),
            "--no-baselines", "--json", str(tmp_path / "rows.json"),
            "--set", "epochs=1", "channels=8", "layers=2", "max_steps_per_epoch=1"]
    assert students.main(args + ["--model", models["clean"], models["pdb-only"], models["with-nox"]]) == 0
    rows = {r["predictor"]: r for r in json.loads((tmp_path / "rows.json").read_text())}
    assert rows[models["clean"]]["nox_proteins"] == 16 and 0 <= rows[models["clean"]]["nox_auc"] <= 1
    for name in ("pdb-only", "with-nox"):  # no nox output; trained on the held-out NOX proteins
        assert rows[models[name]]["nox_proteins"] == 0 and np.isnan(rows[models[name]]["nox_auc"])
        assert 0 <= rows[models[name]]["pdb_auc"] <= 1
    with pytest.raises(InputError, match="validation file"):
        students.main(args + ["--model", models["with-valid"]])


def test_benchmark_scripts_report_bad_input_in_one_line(tmp_path):
    """Run as scripts, the benchmarks turn idrkit's errors into one line and an exit code, no traceback."""
    import subprocess
    import sys

    missing = tmp_path / "missing.fasta"
    for script, args in [("students", ["--train", f"pdb:{missing}", "--valid", str(missing), "--unlabelled",
                                       str(missing), "--no-baselines"]),
                         ("heldout_tracks", ["--model", str(tmp_path / "no-model"), "--train", f"pdb:{missing}"]),
                         ("fold_recipe", ["train", "--pack", str(missing), "--out", str(tmp_path / "o")]),
                         ("select_models", ["--runs", str(missing), "--train", f"pdb:{missing}", "--valid",
                                            str(missing)]),
                         ("function_stack", ["--runs", str(missing), "--candidate", "c", "--binding", str(missing),
                                             "--binding-idr", str(missing), "--linker", str(missing)]),
                         ("binding_finetune", ["--runs", str(missing), "--candidate", "c", "--binding",
                                               str(missing), "--nox", str(missing)]),
                         ("lstm_speed", ["--fasta", str(missing)])]:
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr
        assert f"{script}.py: error:" in proc.stderr and "missing.fasta" in proc.stderr


def _recipe_inputs(tmp_path, monkeypatch, pdb_records, nox_records, unlabelled_records):
    """Labelled pdb and nox files and an unlabelled file for fold_recipe.py pack, with a temporary teacher
    cache and folds of one cluster per protein (MMseqs2 clustering is tested elsewhere)."""
    from idrkit import train

    monkeypatch.setenv("IDRKIT_CACHE", str(tmp_path / "cache"))
    real_folds = train.homology_folds
    monkeypatch.setattr(train, "homology_folds", lambda recs, k, seed=0: real_folds(recs, k=k, seed=seed,
                                                                                     use_mmseqs=False))
    unl = tmp_path / "unl.fasta"
    unl.write_text("".join(f">u{r.id}\n{r.sequence}\n" for r in unlabelled_records))
    return (write_labelled(tmp_path / "pdb.fasta", pdb_records), write_labelled(tmp_path / "nox.fasta", nox_records),
            unl)


def test_fold_recipe_and_selection_choose_on_folds(tiny_records, cnn_dir, tmp_path, monkeypatch, capsys):
    """pack -> train per fold -> select: out-of-fold scores come from the model of each protein's fold, the
    thresholds shipped are the out-of-fold ones, and the card says how the model was chosen."""
    import pickle

    from idrkit.models import load_model

    pdb, nox, unl = _recipe_inputs(tmp_path, monkeypatch, tiny_records[:20], tiny_records[20:36], tiny_records[:30])
    valid = write_labelled(tmp_path / "valid.fasta", tiny_records[36:])
    recipe, select = _load("fold_recipe"), _load("select_models")
    pack, out = tmp_path / "pack.npz", tmp_path / "models"
    assert recipe.main(["pack", "--out", str(pack), "--folds", "2", "--train", f"pdb:{pdb}", f"nox:{nox}",
                        "--unlabelled", str(unl), "--teacher", str(cnn_dir)]) == 0
    assert recipe.main(["train", "--pack", str(pack), "--out", str(out), "--archs", "ctx32", "--variants",
                        "unweighted", "--distil-epochs", "1", "--snapshots", "1", "--set", "channels=8", "layers=2",
                        "--workers", "1", "--batch-residues", "4096"]) == 0
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["ctx32-distilled", "ctx32-unweighted-e1-all", "ctx32-unweighted-e1-fold0",
                     "ctx32-unweighted-e1-fold1"]
    folds = json.loads((out / "folds.json").read_text())
    assert len(folds) == 36 and {f["fold"] for f in folds} == {0, 1}
    assert not list(out.glob("features.*")) and not list(tmp_path.glob(".pack.npz.*"))  # no scratch left
    # the recurrent architecture (torch prediction) through the same recipe
    lstm_out = tmp_path / "lstm"
    assert recipe.main(["train", "--pack", str(pack), "--out", str(lstm_out), "--archs", "lstm52", "--variants",
                        "balanced", "--distil-epochs", "1", "--snapshots", "1", "--set", "channels=8", "layers=4",
                        "--workers", "1", "--batch-residues", "4096"]) == 0
    lstm = load_model(lstm_out / "lstm52-balanced-e1-fold0")  # predicts with numpy
    assert lstm.family == "bilstm" and lstm.tracks == ("pdb", "nox") and lstm.params.channels == 8
    assert 0 <= lstm.predict_proba([tiny_records[0].sequence], track="nox")[0].min() <= 1
    # the chunk-recurrent CNN, warm-started from the distilled CNN above (its shared weights copied)
    rec_out = tmp_path / "rec"
    assert recipe.main(["train", "--pack", str(pack), "--out", str(rec_out), "--archs", "rec32", "--variants",
                        "unweighted", "--snapshots", "1", "--distil-epochs", "1", "--set", "channels=8", "layers=2",
                        "--workers", "1",
                        "--batch-residues", "4096", "--init", str(out / "ctx32-distilled"), "--blur", "nox=2"]) == 0
    assert "starting from" in (rec_out / "log.txt").read_text()
    assert "nox: 2 residues each side of a boundary" in (rec_out / "log.txt").read_text()
    assert load_model(rec_out / "rec32-unweighted-e1-fold0").meta["card"]["blur"] == {"nox": 2}
    rec = load_model(rec_out / "rec32-distilled")
    assert rec.params.recurrent == 16 and rec.meta["card"]["init"] == str(out / "ctx32-distilled")
    assert np.array_equal(rec.arrays["feature_mean"], load_model(out / "ctx32-distilled").arrays["feature_mean"])
    assert 0 <= rec.predict_proba([tiny_records[0].sequence], track="pdb")[0].min() <= 1
    # rec32m (a second chunk recurrence after the middle layer) warm-started from rec32 starts as rec32
    mid_out = tmp_path / "mid"
    assert recipe.main(["train", "--pack", str(pack), "--out", str(mid_out), "--archs", "rec32m", "--variants",
                        "--distil-epochs", "0", "--set", "channels=8", "layers=2", "--workers", "1",
                        "--init", str(rec_out / "rec32-distilled")]) == 0
    mid = load_model(mid_out / "rec32m-distilled")
    assert mid.params.recurrent_mid and "w.rec_mid_out.weight" in mid.arrays
    probe = [r.sequence for r in tiny_records[:3]]
    for a, b in zip(mid._predict_index(probe, 2), rec._predict_index(probe, 2)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # a folder of the user's where a model would go is refused before any training, and left as it was
    from idrkit.errors import InputError

    (tmp_path / "guard" / "rec32-distilled").mkdir(parents=True)
    (tmp_path / "guard" / "rec32-distilled" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a model folder"):
        recipe.main(["train", "--pack", str(pack), "--out", str(tmp_path / "guard"), "--archs", "rec32",
                     "--variants", "--distil-epochs", "1", "--set", "channels=8", "layers=2", "--workers", "1"])
    assert (tmp_path / "guard" / "rec32-distilled" / "notes.txt").read_text() == "mine"
    # --name names one architecture's models (here with a chunk of 4); --tar-to writes a new archive, and
    # an archive already there is refused before any training, left as it was
    import tarfile

    named, tars = tmp_path / "named", tmp_path / "tars"
    tars.mkdir()
    args = ["train", "--pack", str(pack), "--archs", "rec32", "--name", "rec32c4", "--variants", "--distil-epochs",
            "1", "--set", "channels=8", "layers=2", "recurrent=4", "--workers", "1", "--batch-residues", "4096",
            "--tar-to", str(tars)]
    assert recipe.main(args + ["--out", str(named)]) == 0
    c4 = load_model(named / "rec32c4-distilled")
    assert c4.params.recurrent == 4 and c4.meta["card"]["arch"] == "rec32c4" and c4.meta["card"]["arch_of"] == "rec32"
    with tarfile.open(tars / "rec32c4.tar.gz") as t:
        assert "rec32c4-distilled/model.json" in t.getnames() and "folds.json" in t.getnames()
    before = (tars / "rec32c4.tar.gz").read_bytes()
    with pytest.raises(InputError, match="already there"):
        recipe.main(args + ["--out", str(tmp_path / "named2")])
    assert (tars / "rec32c4.tar.gz").read_bytes() == before and not list((tmp_path / "named2").glob("rec32c4-*"))
    with pytest.raises(InputError, match="one --archs"):
        recipe.main(["train", "--pack", str(pack), "--out", str(named), "--archs", "rec32", "plain32", "--name", "x"])
    # --distil-epochs 0 fine-tunes the --init model as it is (here with the nox head's loss doubled)
    ft = tmp_path / "ft"
    assert recipe.main(["train", "--pack", str(pack), "--out", str(ft), "--archs", "rec32", "--name", "ft",
                        "--init", str(named / "rec32c4-distilled"), "--distil-epochs", "0", "--variants", "balanced",
                        "--snapshots", "1", "--nox-weight", "2", "--set", "channels=8", "layers=2", "recurrent=4",
                        "--workers", "1", "--batch-residues", "4096"]) == 0
    assert "no further distillation" in (ft / "log.txt").read_text()
    start = load_model(ft / "ft-distilled")
    for key, v in c4.arrays.items():
        if key.startswith("w."):
            np.testing.assert_array_equal(start.arrays[key], v)
    assert load_model(ft / "ft-balanced-e1-fold0").meta["card"]["nox_weight"] == 2.0
    with pytest.raises(InputError, match="give --init"):
        recipe.main(["train", "--pack", str(pack), "--out", str(ft), "--archs", "rec32", "--distil-epochs", "0"])

    ship, dump = tmp_path / "shipped", tmp_path / "scores.pkl"
    assert select.main(["--runs", str(out), "--train", f"pdb:{pdb}", f"nox:{nox}", "--valid", str(valid),
                        "--models", str(cnn_dir), "--baselines", str(cnn_dir), "--bootstrap", "20", "--ensemble",
                        "--markdown", str(tmp_path / "t.md"), "--dump", str(dump), "--ship", str(ship)]) == 0
    table = (tmp_path / "t.md").read_text()
    assert "**ctx32-unweighted-e1**" in table and "minus" in table and "| mean of the 1 candidates |" in table
    assert "(reference) |" in table  # the chosen candidate averaged with the first baseline
    d = pickle.load(open(dump, "rb"))
    # the out-of-fold scores of fold 1's NOX proteins are fold 1's model's predictions of them
    nox_ids = [f["id"] for f in folds if f["track"] == "nox"]
    in_fold1 = [i for i, f in enumerate(f for f in folds if f["track"] == "nox") if f["fold"] == 1]
    model1 = load_model(out / "ctx32-unweighted-e1-fold1")
    seqs = {r.id: r.sequence for r in tiny_records}
    direct = model1.predict_proba([seqs[nox_ids[i]] for i in in_fold1], track="nox")
    for i, s in zip(in_fold1, direct):
        np.testing.assert_allclose(d["oof"]["ctx32-unweighted-e1"]["nox"][i], s, rtol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shipped.")]  # written through a temp folder
    shipped = load_model(ship)
    assert shipped.meta["thresholds"] == d["thresholds"]["ctx32-unweighted-e1"]
    card = (ship / "card.md").read_text()
    assert "out-of-fold" in card and "2 MMseqs2 folds" in card and "Chosen as: candidate 'ctx32-unweighted-e1'" in card

    # binding and linker stacked on the fold models' out-of-fold disorder scores, then shipped as a stack model
    stack_in = write_labelled(tmp_path / "function.fasta", tiny_records[20:36])
    stack_out = tmp_path / "stacked"
    assert _load("function_stack").main(["--runs", str(out), "--candidate", "ctx32-unweighted-e1", "--binding",
                                         str(stack_in), "--binding-idr", str(stack_in), "--linker", str(stack_in),
                                         "--l2", "1", "--ship", str(stack_out), "--base", str(ship), "--gbdt"]) == 0
    printed = capsys.readouterr().out
    assert "binding track, scored within IDRs" in printed and "chosen" in printed
    assert "LightGBM" in printed and "chosen (highest mean AUC of the three files): LR" in printed
    stacked = load_model(stack_out)
    assert stacked.tracks == ("pdb", "nox", "binding", "linker")
    assert set(stacked.meta["thresholds"]) == {"pdb", "nox", "binding", "linker"}
    assert {t: stacked.meta["thresholds"][t] for t in ("pdb", "nox")} == d["thresholds"]["ctx32-unweighted-e1"]
    assert (stack_out / "base" / "card.md").is_file()
    from idrkit.errors import InputError

    with pytest.raises(InputError, match="not the weights"):
        _load("function_stack").main(["--runs", str(out), "--candidate", "ctx32-unweighted-e1", "--binding",
                                      str(stack_in), "--binding-idr", str(stack_in), "--linker", str(stack_in),
                                      "--l2", "1", "--ship", str(tmp_path / "s2"), "--base", str(cnn_dir)])
    assert 0 <= stacked.predict_proba([tiny_records[0].sequence], track="linker")[0].min()
    # variants with region features and with the pLDDT of an extra model; the chosen one ships with that model
    pl_dir = tmp_path / "plddt-model"
    shutil.copytree(cnn_dir, pl_dir)
    doc = json.loads((pl_dir / "model.json").read_text())
    doc["meta"]["heads"] = doc["tracks"] = ["pdb", "plddt"]
    doc["meta"]["thresholds"] = {"pdb": 0.5, "plddt": 0.7}
    (pl_dir / "model.json").write_text(json.dumps(doc))
    fs_args = ["--runs", str(out), "--candidate", "ctx32-unweighted-e1", "--binding", str(stack_in), "--binding-idr",
               str(stack_in), "--linker", str(stack_in), "--l2", "1", "--protein", "--plddt", str(pl_dir)]
    assert _load("function_stack").main(fs_args + ["--ship", str(tmp_path / "s3"), "--base", str(ship),
                                                   "--extra", str(pl_dir)]) == 0
    printed = capsys.readouterr().out
    assert "LR l2=1 +protein" in printed and "LR l2=1 +int +plddt" in printed
    chosen = printed.split("chosen (highest mean AUC of the three files): ")[-1].splitlines()[0]  # this run's
    s3 = load_model(tmp_path / "s3")
    assert s3.params.plddt == ("+plddt" in chosen) and s3.params.protein == ("+protein" in chosen)
    assert s3.tracks == ("pdb", "nox", "binding", "linker", "plddt")
    assert 0 <= s3.predict_proba([tiny_records[0].sequence], track="binding")[0].min()

    # the mean of the best k candidates of two runs with the same folds, k chosen on the folds, shipped as an
    # ensemble whose thresholds are the mean's out-of-fold ones
    top, dump2 = tmp_path / "top", tmp_path / "scores2.pkl"
    with pytest.raises(InputError, match="is not a model folder"):  # refused before any work
        select.main(["--runs", str(out), str(rec_out), "--train", f"pdb:{pdb}", f"nox:{nox}", "--valid", str(valid),
                     "--top", "2", "--ship-top", str(tmp_path)])
    with pytest.raises(InputError, match="at least two complete candidates"):  # one run holds one candidate
        select.main(["--runs", str(out), "--train", f"pdb:{pdb}", f"nox:{nox}", "--valid", str(valid),
                     "--top", "2", "--ship-top", str(tmp_path / "top1")])
    assert not (tmp_path / "top1").exists()
    assert select.main(["--runs", str(out), str(rec_out), "--train", f"pdb:{pdb}", f"nox:{nox}", "--valid", str(valid),
                        "--models", "--baselines", str(cnn_dir), "--bootstrap", "10", "--top", "2",
                        "--dump", str(dump2), "--ship-top", str(top)]) == 0
    printed = capsys.readouterr().out
    assert "Best mean of the best k candidates" in printed and "mean of the best 2 minus" in printed
    d2 = pickle.load(open(dump2, "rb"))
    members = ["ctx32-unweighted-e1", "rec32-unweighted-e1"]
    for t in ("pdb", "nox"):
        for i, s in enumerate(d2["oof"]["mean of the best 2"][t]):
            np.testing.assert_allclose(s, (d2["oof"][members[0]][t][i] + d2["oof"][members[1]][t][i]) / 2)
    ensemble = load_model(top)
    assert ensemble.family == "ensemble" and len(ensemble.members) == 2
    assert ensemble.meta["thresholds"] == d2["thresholds"]["mean of the best 2"]
    np.testing.assert_allclose(ensemble.predict_proba([tiny_records[36].sequence])[0], d2["valid_scores"][
        "mean of the best 2"][0], rtol=1e-6)
    assert "Chosen as: 'mean of the best 2'" in (top / "card.md").read_text()


def test_train_fast_keeps_its_teachers_thresholds_and_never_replaces_a_folder(tiny_records, tmp_path, monkeypatch):
    """The fast student learns the shipped default's scores; its thresholds are the default's (chosen on
    folds) unless --own-thresholds asks for its own; it writes only a model folder."""
    from idrkit.errors import InputError
    from idrkit.models import load_model
    from idrkit.predict import get_model

    monkeypatch.setenv("IDRKIT_CACHE", str(tmp_path / "cache"))
    pdb = write_labelled(tmp_path / "pdb.fasta", tiny_records[:20])
    nox = write_labelled(tmp_path / "nox.fasta", tiny_records[20:36])
    unl = tmp_path / "unl.fasta"
    unl.write_text("".join(f">u{r.id}\n{r.sequence}\n" for r in tiny_records[:30]))
    fast = _load("train_fast")
    common = ["--unlabelled", str(unl), "--train", f"pdb:{pdb}", f"nox:{nox}", "--set", "channels=4", "layers=1",
              "dilations=[1]", "epochs=1"]
    assert fast.main(["--out", str(tmp_path / "fast")] + common) == 0
    student = load_model(tmp_path / "fast")
    teacher = get_model(None)
    assert student.meta["thresholds"] == {t: teacher.meta["thresholds"][t] for t in ("pdb", "nox")}
    assert "its teacher's" in (tmp_path / "fast" / "card.md").read_text()
    assert fast.main(["--out", str(tmp_path / "own"), "--from", str(tmp_path / "fast"), "--own-thresholds"]
                     + common) == 0
    assert "student's scores" in (tmp_path / "own" / "card.md").read_text()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a model folder"):
        fast.main(["--out", str(tmp_path / "mine")] + common)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_nested_stacking_learns_only_from_models_that_never_saw_the_held_out_fold(tiny_records, cnn_dir, tmp_path,
                                                                                  monkeypatch, capsys):
    """fold_recipe.py --pairs fine-tunes one model per pair of folds on the proteins outside both, and
    function_stack.py --nested fits each held-out fold's regressions on those models' scores."""
    from idrkit.cache import sequence_hash64
    from idrkit.errors import InputError
    from idrkit.io import read_records
    from idrkit.models import load_model
    from idrkit.models.stack import disorder_scores, fit_logistic, logistic

    # the unlabelled proteins are none of the labelled ones
    pdb, nox, unl = _recipe_inputs(tmp_path, monkeypatch, tiny_records[:18], tiny_records[18:36], tiny_records[36:])
    recipe, stack = _load("fold_recipe"), _load("function_stack")
    common = ["--archs", "plain32", "--variants", "unweighted", "--snapshots", "1", "--set", "channels=8",
              "layers=2", "--workers", "1", "--batch-residues", "4096"]
    pack2 = tmp_path / "pack2.npz"
    assert recipe.main(["pack", "--out", str(pack2), "--folds", "2", "--train", f"pdb:{pdb}", f"nox:{nox}",
                        "--unlabelled", str(unl), "--teacher", str(cnn_dir)]) == 0
    with pytest.raises(InputError, match="at least 3 folds"):
        recipe.main(["train", "--pack", str(pack2), "--out", str(tmp_path / "p2"), "--pairs",
                     "--distil-epochs", "1"] + common)
    pack, out = tmp_path / "pack.npz", tmp_path / "models"
    assert recipe.main(["pack", "--out", str(pack), "--folds", "3", "--train", f"pdb:{pdb}", f"nox:{nox}",
                        "--unlabelled", str(unl), "--teacher", str(cnn_dir)]) == 0
    assert recipe.main(["train", "--pack", str(pack), "--out", str(out), "--distil-epochs", "1"] + common) == 0
    pairs = tmp_path / "pairs"
    assert recipe.main(["train", "--pack", str(pack), "--out", str(pairs), "--pairs", "--distil-epochs", "0",
                        "--init", str(out / "plain32-distilled")] + common) == 0
    assert sorted(p.name for p in pairs.iterdir() if p.name.startswith("plain32-unweighted")) == [
        "plain32-unweighted-e1-fold0-1", "plain32-unweighted-e1-fold0-2", "plain32-unweighted-e1-fold1-2"]
    folds = json.loads((out / "folds.json").read_text())
    assert folds == json.loads((pairs / "folds.json").read_text())
    seqs = {r.id: r.sequence for r in tiny_records}
    for a, b in ((0, 1), (0, 2), (1, 2)):  # each pair model learnt the labels of the third fold only
        seen = set(load_model(pairs / f"plain32-unweighted-e1-fold{a}-{b}").arrays["train_sequence_hash"].tolist())
        for f in folds:
            assert (sequence_hash64(seqs[f["id"]]) in seen) == (f["fold"] not in (a, b)), f
    # the held-out fold's proteins are scored by the fold model, the others by the pair models
    fold = np.array([f["fold"] for f in folds if f["track"] == "nox"])
    nox_seqs = [seqs[f["id"]] for f in folds if f["track"] == "nox"]
    nested = stack.pair_scores(pairs, "plain32-unweighted-e1", fold, 3, nox_seqs)
    for i in range(3):
        assert sorted(nested[i]) == np.flatnonzero(fold != i).tolist()
        for j, s in nested[i].items():
            pair = tuple(sorted((i, int(fold[j]))))
            want = disorder_scores(load_model(pairs / f"plain32-unweighted-e1-fold{pair[0]}-{pair[1]}"), [nox_seqs[j]])
            np.testing.assert_allclose(s["nox"], want[0]["nox"], rtol=1e-6)
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(len(s), 3)) for s in nox_seqs]
    labels = [(rng.random(len(s)) < 0.4).astype(np.int8) for s in nox_seqs]
    inner = {i: {j: xj + 1.0 for j, xj in enumerate(x) if fold[j] != i} for i in range(3)}
    oof = stack.out_of_fold(x, labels, fold, 3, 1.0, inner)
    for i in range(3):
        train_idx = np.flatnonzero(fold != i)
        lr = fit_logistic([inner[i][j] for j in train_idx], [labels[j] for j in train_idx], 1.0)
        for j in np.flatnonzero(fold == i):
            np.testing.assert_allclose(oof[j], logistic(x[j], lr))
    # the whole stack, nested, beside the plain one; a missing pair model is named
    func = write_labelled(tmp_path / "function.fasta", tiny_records[18:36])
    args = ["--runs", str(out), "--candidate", "plain32-unweighted-e1", "--binding", str(func), "--binding-idr",
            str(func), "--linker", str(func), "--l2", "1"]
    assert stack.main(args + ["--nested", str(pairs)]) == 0
    printed = capsys.readouterr().out
    assert "nested: each fold's regression learns" in printed and "the same regressions not nested" in printed
    with pytest.raises(InputError, match="--gbdt is not nested"):
        stack.main(args + ["--nested", str(pairs), "--gbdt"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a model folder"):  # refused before the regressions
        stack.main(args + ["--nested", str(pairs), "--ship", str(mine)])
    assert [f.name for f in mine.iterdir()] == ["notes.txt"] and "chosen" not in capsys.readouterr().out
    # a binding head fine-tuned per fold: before fine-tuning it is the fold model's nox head; the -all model
    # fine-tuned the same way ships as the stack's partner, whose binding track is the mean of the two
    import pickle

    ft, head, dump = _load("binding_finetune"), tmp_path / "head", tmp_path / "ft.pkl"
    ft_args = ["--runs", str(out), "--candidate", "plain32-unweighted-e1", "--binding", str(func), "--nox",
               str(nox), "--epochs", "2", "--batch-residues", "4096", "--dump", str(dump)]
    assert ft.main(ft_args + ["--ship-head", str(head)]) == 0
    d = pickle.loads(dump.read_bytes())
    func_recs = read_records(str(func), require_labels=True)
    assert d["ids"] == [r.id for r in func_recs] and sorted(d["scores"]) == [0, 1, 2]
    for j, r in enumerate(func_recs):
        fold_model = load_model(out / f"plain32-unweighted-e1-fold{d['fold'][j]}")
        np.testing.assert_allclose(d["scores"][0][j], fold_model.predict_proba([r.sequence], track="nox")[0],
                                   rtol=1e-4, atol=1e-5)
    assert not all(np.allclose(a, b) for a, b in zip(d["scores"][0], d["scores"][2]))
    partner = load_model(head)
    assert partner.tracks == ("pdb", "nox", "binding") and partner.meta["card"]["binding_head"]["epochs"] == 2
    shipped = tmp_path / "with-partner"
    assert stack.main(args + ["--nested", str(pairs), "--partner", str(head), "--partner-oof", str(dump),
                              "--ship", str(shipped)]) == 0
    printed = capsys.readouterr().out
    assert "their mean (the shipped binding track)" in printed
    model = load_model(shipped)
    assert model.partner is not None and (shipped / "partner" / "model.json").is_file()
    seq = [func_recs[0].sequence]
    lr = {key: model.arrays[f"lr.binding.{key}"] for key in ("mu", "sd", "beta")}
    want = (logistic(model.features(seq)[0], lr) + partner.predict_proba(seq, track="binding")[0]) / 2
    np.testing.assert_allclose(model.predict_proba(seq, track="binding")[0], want, rtol=1e-5)
    with pytest.raises(InputError, match="give --partner-oof too"):
        stack.main(args + ["--partner", str(head), "--ship", str(tmp_path / "x")])
    assert ft.main(ft_args[:-4] + ["--epochs", "1", "--dump", str(tmp_path / "ft1.pkl")]) == 0
    with pytest.raises(InputError, match="same binding_finetune.py --epochs"):
        stack.main(args + ["--nested", str(pairs), "--partner", str(head), "--partner-oof", str(tmp_path / "ft1.pkl")])
    shutil.rmtree(pairs / "plain32-unweighted-e1-fold1-2")
    with pytest.raises(InputError, match="fold1-2: missing"):
        stack.main(args + ["--nested", str(pairs)])


def test_blur_boundaries_hides_labels_next_to_a_change():
    """fold_recipe.py --blur: the residues within the width of a change between order and disorder become
    unknown (-1); unknown labels stay unknown and a protein without a change keeps its labels."""
    recipe = _load("fold_recipe")
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, -1, 1, 1], dtype=np.int8)
    assert recipe.blur_boundaries(labels, 2).tolist() == [0, 0, -1, -1, -1, -1, 1, 1, -1, -1, -1, -1, -1, 1, 1]
    assert recipe.blur_boundaries(labels, 0).tolist() == labels.tolist()
    assert recipe.blur_boundaries(np.ones(6, np.int8), 3).tolist() == [1] * 6
    from idrkit.errors import InputError

    with pytest.raises(InputError, match="TRACK=RESIDUES"):
        recipe._blur_setting("teacher=2")


@pytest.mark.parametrize("bad", [["--blur", "nox"], ["--set", "width=3"]])
def test_fold_recipe_refuses_bad_settings_before_any_work(tmp_path, bad):
    """A bad --blur or --set is refused before the pack is read or the output folder is made."""
    from idrkit.errors import InputError

    recipe = _load("fold_recipe")
    pack = tmp_path / "pack.npz"
    pack.write_bytes(b"not read")  # a bad setting is refused before the pack is read
    with pytest.raises(InputError, match="--blur|--set"):
        recipe.main(["train", "--pack", str(pack), "--out", str(tmp_path / "o")] + bad)
    assert not (tmp_path / "o").exists()


def test_fidelity_where_finds_differences_at_the_termini():
    """fidelity.py --where: a student that departs from v3 only in the first 3 residues of each protein has
    all of the squared difference in the 0-4 band; a constant offset is all per-protein mean offset."""
    fidelity = _load("fidelity")
    rng = np.random.default_rng(0)
    ref = [rng.random(200) for _ in range(4)]
    student = [r.copy() for r in ref]
    for s in student:
        s[:3] += 0.3
    w = fidelity.where(ref, student)
    assert [b["band"] for b in w["bands"]] == ["0-4", "5-19", "20-59", "60-149", "150+"]
    assert w["bands"][0]["sq_diff"] == pytest.approx(1.0) and w["bands"][2]["r"] == pytest.approx(1.0)
    assert sum(b["residues"] for b in w["bands"]) == pytest.approx(1.0)
    assert fidelity.where(ref, [r + 0.1 for r in ref])["offset_share"] == pytest.approx(1.0)
    assert w["offset_share"] < 0.1
