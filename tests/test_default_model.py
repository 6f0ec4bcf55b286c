"""The shipped default model: loads without torch, batch equals single, CLI and API use it."""

import json
import subprocess
import sys

import numpy as np

import idrkit
from idrkit.cli import main
from idrkit.predict import DEFAULT_MODEL, get_model

SEQS = ["MSEEPKSSPQESEKPAEGSSKPAAEE" * 2, "MKVLIVWFAMLIVWFAMCYLIVGRKDE" * 4, "M", "MKVLAAEEPKSSPQ" * 50]


def test_default_model_is_shipped_with_a_card():
    assert (DEFAULT_MODEL / "model.json").is_file() and (DEFAULT_MODEL / "weights.npz").is_file()
    card = json.loads((DEFAULT_MODEL / "card.json").read_text())
    assert card["training_files"] and all(len(f["sha256"]) == 64 for f in card["training_files"])
    model = get_model()
    assert set(model.tracks) == {"pdb", "nox"}


def test_predict_disorder_single_and_batch_agree():
    batch = idrkit.predict_disorder(SEQS)
    for seq, b in zip(SEQS, batch):
        single = idrkit.predict_disorder(seq)
        assert single.shape == (len(seq),) and single.dtype == np.float32
        np.testing.assert_allclose(single, b, atol=1e-6)
        assert ((single >= 0) & (single <= 1)).all()
    # a low-complexity charged repeat scores higher than a hydrophobic one
    assert batch[0].mean() > batch[1].mean()


def test_tracks_differ_and_are_selectable():
    pdb = idrkit.predict_disorder(SEQS[3], track="pdb")
    nox = idrkit.predict_disorder(SEQS[3], track="nox")
    assert pdb.shape == nox.shape and not np.allclose(pdb, nox)


def test_shipped_models_need_no_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now fails
        "import idrkit\n"
        "s = idrkit.predict_disorder('MSEEPKSSPQESEKPAEGSSKPAAEE')\n"
        "f = idrkit.predict_disorder('MSEEPKSSPQESEKPAEGSSKPAAEE', model='fast', track='nox')\n"
        "assert len(s) == len(f) == 26\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cli_predict_without_model_flag_to_stdout(tmp_path, capsys):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMSEEPKSSPQESEKPAEGSSKPAAEE\n>b\nMKV\n")
    assert main(["predict", str(fasta)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# ") and "track=pdb" in lines[0]
    assert lines[1] == "id\tposition\tresidue\tscore\tcall" and len(lines) == 2 + 26 + 3
    assert main(["predict", str(fasta), "--format", "json", "--track", "nox"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["meta"]["track"] == "nox" and [p["id"] for p in data["proteins"]] == ["a", "b"]


def test_shipped_function_model_serves_binding_from_its_regression_and_partner(tmp_path):
    """``--model function --track binding`` on the command line: the mean of the stacked regression and the
    partner network's binding head, one score per residue, calls at the card's threshold."""
    from idrkit.models.stack import logistic

    from .conftest import run_idrkit

    model = get_model("function")
    assert set(model.tracks) == {"pdb", "nox", "binding", "linker", "plddt"} and "binding" in model.partner.tracks
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(SEQS)))
    out = tmp_path / "out.tsv"
    r = run_idrkit("predict", fasta, "--model", "function", "--track", "binding", "-o", out)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in out.read_text().splitlines() if not line.startswith(("#", "id\t"))]
    assert len(rows) == sum(map(len, SEQS))
    got = np.array([float(row[3]) for row in rows if row[0] == "s3"])
    lr = {k: model.arrays[f"lr.binding.{k}"] for k in ("mu", "sd", "beta")}
    want = (logistic(model.features([SEQS[3]])[0], lr) + model.partner.predict_proba([SEQS[3]], track="binding")[0]) / 2
    np.testing.assert_allclose(got, want, atol=1e-4)  # the file holds four decimals
    thr = model.meta["thresholds"]["binding"]
    calls = np.array([int(row[4]) for row in rows if row[0] == "s3"])
    assert calls.any() == (got >= thr).any()  # region smoothing may trim, never invent, calls
