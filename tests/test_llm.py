import json

import numpy as np
import pytest

from idrkit.cli import main
from idrkit.models.llm import format_answer, parse_answer
from idrkit.records import Record

from .conftest import write_labelled


def test_parse_answer_cases():
    ok = parse_answer("[1,0,1]", 3)
    assert ok.status == "ok" and ok.labels.tolist() == [1, 0, 1]
    assert parse_answer("110", 3).labels.tolist() == [1, 1, 0]
    long = parse_answer("[1,1,1,0,0]", 3)
    assert long.status == "truncated" and long.labels.tolist() == [1, 1, 1]
    short = parse_answer("[1,0", 4)
    assert short.status == "short" and short.labels[:2].tolist() == [1, 0] and np.isnan(short.labels[2:]).all()
    none = parse_answer("I am not sure.", 3)
    assert none.status == "missing" and np.isnan(none.labels).all()
    stray = parse_answer("[1,x,0,1]", 3)
    assert stray.status == "repaired" and stray.labels.tolist() == [1, 0, 1] and "x" in stray.message


def test_format_answer():
    assert format_answer(np.array([1, 0, -1])) == "[1,0,0]"
    assert format_answer(np.array([1, 0, 1]), "string") == "101"


def test_export_instructions_chunks(tmp_path, tiny_labelled_file):
    out = tmp_path / "inst.jsonl"
    assert main(["export-instructions", str(tiny_labelled_file), "-o", str(out), "--chunk", "50"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(len(r["input"]) <= 50 for r in rows)
    first = rows[0]
    assert set(first) >= {"instruction", "input", "output"}
    assert len(json.loads(first["output"])) == len(first["input"])
    from idrkit.io import read_records

    total = sum(len(r) for r in read_records(tiny_labelled_file))
    assert sum(len(r["input"]) for r in rows) == total


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from .tiny_models import tiny_qwen

    return tiny_qwen(tmp_path_factory.mktemp("qwen") / "tiny-qwen")


@pytest.fixture
def small_file(tmp_path, tiny_records):
    recs = [Record(r.id, r.sequence[:40], r.labels[:40]) for r in tiny_records[:3]]
    return write_labelled(tmp_path / "small.fasta", recs)


def test_llm_train_save_load_predict_via_cli(qwen_dir, small_file, tmp_path, capsys):
    out = tmp_path / "llm"
    assert main(["train", "--model", "llm", "--train", str(small_file), "--out", str(out), "--holdout", "0",
                 "--param", f"base={qwen_dir}", "--param", "chunk=20", "--param", "grad_accum=1",
                 "--param", "progress=false", "--param", "precision=fp32"]) == 0
    cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["lora_alpha"] == 32 and sorted(cfg["target_modules"]) == ["k_proj", "o_proj",
                                                                                             "q_proj", "v_proj"]
    pred = tmp_path / "p.json"
    assert main(["predict", str(small_file), "-o", str(pred), "--model", str(out), "--min-length", "0",
                 "--max-gap", "0"]) == 0
    data = json.loads(pred.read_text())
    answered = 0
    for prot in data["proteins"]:
        scores = np.array(prot["scores"], dtype=float)
        assert scores.size == len(prot["sequence"])
        # constrained generation writes only 0/1 labels; residues without an answer are NaN, never padded
        assert set(scores[~np.isnan(scores)].tolist()) <= {0.0, 1.0}
        answered += int(np.isfinite(scores).sum())
    assert answered > 0, "the tuned model answered no residue at all"


def test_bad_llm_answer_is_reported_not_hidden(qwen_dir, small_file, tmp_path, capsys, monkeypatch):
    from idrkit.models import load_model
    from idrkit.models.llm import LLMTagger

    out = tmp_path / "llm"
    assert main(["train", "--model", "llm", "--train", str(small_file), "--out", str(out), "--holdout", "0",
                 "--param", f"base={qwen_dir}", "--param", "chunk=20", "--param", "progress=false"]) == 0
    monkeypatch.setattr(LLMTagger, "generate_answers", lambda self, seqs: ["[1,0,1]" for _ in seqs])
    model = load_model(out)
    scores = model.predict_proba(["MKVLAAEEPKSSPQ"])[0]
    assert scores[:3].tolist() == [1, 0, 1] and np.isnan(scores[3:]).all()
    assert model.report and model.report[0]["status"] == "short"
    capsys.readouterr()
    assert main(["predict", str(small_file), "-o", str(tmp_path / "p.tsv"), "--model", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: record 'prot0': 3 labels for 20 residues" in err
