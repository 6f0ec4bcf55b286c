"""Proteome-scale prediction: streaming, jobs, resume, Dask, long and tiny proteins."""

import numpy as np
import pytest

from idrkit.cli import main
from idrkit.predict import run_prediction
from idrkit.sequences import read_predictions

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def many_fasta(tmp_path_factory):
    rng = np.random.default_rng(5)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    path = tmp_path_factory.mktemp("fa") / "many.fasta"
    lengths = list(rng.integers(1, 400, 300)) + [1, 2, 35000]  # tiny ones and a titin-sized one
    path.write_text("".join(f">p{i}\n{''.join(rng.choice(aa, n))}\n" for i, n in enumerate(lengths)))
    return path


def test_jobs_give_the_same_output(cnn_dir, many_fasta, tmp_path):
    one = run_prediction(many_fasta, tmp_path / "one.tsv", "tsv", str(cnn_dir), jobs=1, block_residues=5000)
    two = run_prediction(many_fasta, tmp_path / "two.tsv", "tsv", str(cnn_dir), jobs=2, block_residues=5000)
    assert one["written"] == two["written"] == 303
    assert (tmp_path / "one.tsv").read_text() == (tmp_path / "two.tsv").read_text()
    scores = read_predictions(tmp_path / "one.tsv")
    assert scores["p302"].shape == (35000,) and scores["p300"].shape == (1,)


def test_dask_local_cluster_equals_local_run(cnn_dir, many_fasta, tmp_path):
    pytest.importorskip("distributed")
    run_prediction(many_fasta, tmp_path / "local.csv", "csv", str(cnn_dir), block_residues=20000)
    run_prediction(many_fasta, tmp_path / "dask.csv", "csv", str(cnn_dir), engine="dask", jobs=2,
                   block_residues=20000)
    assert (tmp_path / "local.csv").read_text() == (tmp_path / "dask.csv").read_text()


@pytest.mark.parametrize("fmt", ["tsv", "json", "caid"])
def test_resume_after_interruption(cnn_dir, many_fasta, tmp_path, fmt, monkeypatch):
    import idrkit.predict as pr

    full = tmp_path / f"full.{fmt}"
    run_prediction(many_fasta, full, fmt, str(cnn_dir), block_residues=3000)
    out = tmp_path / f"out.{fmt}"
    real = pr._predict_block
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(pr, "_predict_block", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_prediction(many_fasta, out, fmt, str(cnn_dir), block_residues=3000)
    assert not out.exists() and out.with_name(out.name + ".partial").exists()
    # a torn last block: garbage after the last complete block must be cut away on resume
    partial = out.with_name(out.name + ".partial")
    if partial.is_file():
        with open(partial, "ab") as fh:
            fh.write(b"p999\t1\tM\t0.5")
    monkeypatch.setattr(pr, "_predict_block", real)
    stats = run_prediction(many_fasta, out, fmt, str(cnn_dir), block_residues=3000, resume=True)
    assert stats["skipped"] > 0 and stats["written"] == 303
    a, b = read_predictions(full), read_predictions(out)
    assert list(a) == list(b) or sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not out.with_name(out.name + ".partial").exists()


def test_blocks_in_flight_are_bounded(cnn_dir, tmp_path, monkeypatch):
    """The reader runs at most a few blocks ahead of the writer: memory does not grow with the input."""
    import idrkit.predict as pr
    import idrkit.sequences as sq

    read, written = {"n": 0}, {"n": 0}
    real_iter, real_write = sq.iter_records, sq.PredictionWriter.write_block
    ahead = []

    def counting_iter(*a, **k):
        for rec in real_iter(*a, **k):
            read["n"] += 1
            ahead.append(read["n"] - written["n"])
            yield rec

    def counting_write(self, items):
        written["n"] += len(items)
        return real_write(self, items)

    monkeypatch.setattr(sq, "iter_records", counting_iter)
    monkeypatch.setattr(sq.PredictionWriter, "write_block", counting_write)
    path = tmp_path / "big.fasta"
    path.write_text("".join(f">s{i}\nMKVLAAEEPKSSPQ\n" for i in range(3000)))
    run_prediction(path, tmp_path / "o.csv", "csv", str(cnn_dir), block_residues=1400, jobs=2)
    assert written["n"] == 3000
    assert max(ahead) <= 2 * 2 * 100 + 100 + 1  # 2*jobs blocks of 100 sequences, plus the one being read


def test_cli_predict_progress_and_jobs(cnn_dir, many_fasta, tmp_path, capsys):
    assert main(["predict", str(many_fasta), "-o", str(tmp_path / "o.json"), "--model", str(cnn_dir),
                 "--jobs", "2", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "wrote 303 proteins" in err and "residues/s" in err
