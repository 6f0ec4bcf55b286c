import json
import shutil

import numpy as np
import pytest

from idrkit.cli import main


@pytest.fixture(scope="module")
def w2v_model(tmp_path_factory, tiny_labelled_file):
    pytest.importorskip("gensim")
    out = tmp_path_factory.mktemp("models") / "w2v"
    assert main(["train", "--model", "w2v-nb", "--train", str(tiny_labelled_file), "--out", str(out),
                 "--no-homology-split", "--param", "vector_size=16"]) == 0
    return out


def test_train_refuses_validation_that_is_training_data(tmp_path, tiny_labelled_file, capsys):
    pytest.importorskip("gensim")
    code = main(["train", "--model", "w2v-nb", "--train", str(tiny_labelled_file), "--out", str(tmp_path / "m"),
                 "--valid", str(tiny_labelled_file), "--no-homology-split", "--param", "vector_size=8"])
    assert code == 2
    assert "validation sequences are also in the training data" in capsys.readouterr().err


def test_model_card_written(w2v_model):
    card = json.loads((w2v_model / "card.json").read_text())
    assert card["family"] == "w2v-nb" and len(card["training_files"][0]["sha256"]) == 64
    assert "pdb" in card["thresholds"]
    assert (w2v_model / "card.md").read_text().startswith("# idrkit model: w2v-nb")


@pytest.mark.parametrize("fmt", ["tsv", "csv", "json", "caid"])
def test_predict_then_evaluate(w2v_model, tiny_labelled_file, tmp_path, capsys, fmt):
    out = tmp_path / f"pred.{fmt}"
    assert main(["predict", str(tiny_labelled_file), "-o", str(out), "--model", str(w2v_model),
                 "--format", fmt]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--ref", str(tiny_labelled_file), str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)[str(out)]
    assert res["proteins"] == 40 and 0.5 < res["auc"] <= 1.0
    assert res["calls"] == "the file's 0/1 calls"


def test_evaluate_scores_the_calls_a_file_holds(cnn_dir, tiny_labelled_file, tiny_records, tmp_path, capsys):
    """F1 of a TSV is the F1 of its own (smoothed, model-threshold) calls; --threshold re-thresholds scores."""
    from idrkit.metrics import pooled_metrics
    from idrkit.models import load_model

    out = tmp_path / "p.tsv"
    assert main(["predict", str(tiny_labelled_file), "-o", str(out), "--model", str(cnn_dir)]) == 0
    model = load_model(cnn_dir)
    seqs, labels = [r.sequence for r in tiny_records], [r.labels for r in tiny_records]
    scores = model.predict_proba(seqs)
    own = pooled_metrics(labels, scores, calls=model.predict(seqs))
    raw = pooled_metrics(labels, scores, calls=[s >= 0.3 for s in scores])
    capsys.readouterr()
    assert main(["evaluate", "--ref", str(tiny_labelled_file), str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)[str(out)]
    assert res["f1"] == pytest.approx(own["f1"], abs=1e-9) and res["mcc"] == pytest.approx(own["mcc"], abs=1e-9)
    assert main(["evaluate", "--ref", str(tiny_labelled_file), str(out), "--json", "--threshold", "0.3"]) == 0
    res = json.loads(capsys.readouterr().out)[str(out)]
    assert res["calls"] == "scores >= 0.3" and res["f1"] == pytest.approx(raw["f1"], abs=1e-4)
    assert main(["evaluate", "--ref", str(tiny_labelled_file), str(out)]) == 0
    assert "0/1 metrics from " + f"{out}: the file's 0/1 calls" in capsys.readouterr().out


def test_evaluate_table_and_bootstrap(w2v_model, tiny_labelled_file, tmp_path, capsys):
    out = tmp_path / "p.tsv"
    main(["predict", str(tiny_labelled_file), "-o", str(out), "--model", str(w2v_model)])
    capsys.readouterr()
    assert main(["evaluate", "--ref", str(tiny_labelled_file), str(out), "--bootstrap", "20",
                 "--per-protein", str(tmp_path / "pp.tsv")]) == 0
    text = capsys.readouterr().out
    assert "auc" in text and "95% CI" in text
    assert len((tmp_path / "pp.tsv").read_text().splitlines()) == 41


def test_evaluate_warns_on_training_overlap(w2v_model, tiny_labelled_file, tmp_path, capsys):
    out = tmp_path / "p.tsv"
    main(["predict", str(tiny_labelled_file), "-o", str(out), "--model", str(w2v_model)])
    capsys.readouterr()
    assert main(["evaluate", "--ref", str(tiny_labelled_file), str(out), "--model", str(w2v_model)]) == 0
    assert "40 of 40 proteins" in capsys.readouterr().err
    assert main(["evaluate", "--ref", str(tiny_labelled_file), str(out), "--model", str(w2v_model),
                 "--strict"]) == 2


def test_bad_input_is_one_line_and_no_output(w2v_model, tmp_path, capsys):
    bad = tmp_path / "bad.fasta"
    bad.write_text(">ok\nMKVLA\n>broken\nMKV7L\n")
    out = tmp_path / "out.tsv"
    code = main(["predict", str(bad), "-o", str(out), "--model", str(w2v_model)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (f"idrkit predict: error: {bad}: record 'broken': invalid character '7' at position 4 "
                   "(allowed: the 20 standard residues and B, Z, J, U, O, X)")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.fasta"]


def test_missing_model_and_missing_file(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "none.fasta"), "-o", str(tmp_path / "o.tsv"),
                 "--model", str(tmp_path)]) == 3
    assert "not a model folder" in capsys.readouterr().err
    (tmp_path / "a.fasta").write_text(">a\nMK\n")
    assert main(["evaluate", "--ref", str(tmp_path / "a.fasta"), str(tmp_path / "x.tsv")]) == 2
    assert "no labels" in capsys.readouterr().err


def test_evaluate_missing_prediction_names_record(tiny_labelled_file, tmp_path, capsys):
    pred = tmp_path / "p.csv"
    pred.write_text("proteinID,sequence,IDRs\nprot0,MK,10\n")
    assert main(["evaluate", "--ref", str(tiny_labelled_file), str(pred)]) == 2
    assert "record 'prot0'" in capsys.readouterr().err


def test_help_names_every_command(capsys):
    import re

    from idrkit.cli import COMMANDS

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert set(COMMANDS) == {"predict", "train", "distil", "evaluate", "plot", "serve", "export-instructions",
                             "data", "models"}
    for cmd in COMMANDS:
        assert re.search(rf"(?<![\w-]){re.escape(cmd)}(?![\w-])", text), f"'{cmd}' is not in the help"


@pytest.mark.skipif(shutil.which("mmseqs") is None, reason="mmseqs2 is not installed")
def test_data_overlap_finds_planted_homolog(tmp_path, capsys):
    rng = np.random.default_rng(1)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    target = "".join(rng.choice(aa, 200))
    homolog = list(target)
    for i in rng.choice(200, 40, replace=False):  # 80% identity
        homolog[i] = rng.choice(aa)
    train = tmp_path / "train.fasta"
    train.write_text(f">unrelated\n{''.join(rng.choice(aa, 180))}\n>planted\n{''.join(homolog)}\n")
    evals = tmp_path / "eval.fasta"
    evals.write_text(f">target\n{target}\n>other\n{''.join(rng.choice(aa, 150))}\n")
    assert main(["data", "overlap", str(train), "--against", str(evals)]) == 0
    out = capsys.readouterr()
    rows = [line.split("\t") for line in out.out.strip().splitlines()[1:]]
    assert [(r[1], r[3]) for r in rows] == [("planted", "target")]
    assert f"{train}: 1 of 2" in out.err


def test_models_lists_shipped_and_given_models(cnn_dir, capsys):
    assert main(["models", str(cnn_dir), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"default", "fast", str(cnn_dir)} <= set(rows)
    assert rows["default"]["tracks"] == "pdb,nox" and rows["default"]["validation_auc"] > 0.9
    assert rows[str(cnn_dir)]["parameters"] > 0 and rows[str(cnn_dir)]["thresholds"] == {"pdb": 0.45, "nox": 0.55}
    assert main(["models"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:3] == ["name", "family", "tracks"]
