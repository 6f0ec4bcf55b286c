"""Records in, predictions out: the API, streaming, jobs, resume, Dask, long and tiny proteins.

These tests use the committed tiny CNN, which predicts with numpy alone (no torch needed).
"""

import numpy as np
import pytest

import idrkit.predict as pr
from idrkit.cli import main
from idrkit.errors import InputError
from idrkit.io import OutputFormat, read_predictions
from idrkit.models import load_model
from idrkit.predict import blocks, map_bounded, predict_records, run_prediction
from idrkit.records import Record
from idrkit.regions import CallOptions


@pytest.fixture(scope="module")
def many_fasta(tmp_path_factory):
    rng = np.random.default_rng(5)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    path = tmp_path_factory.mktemp("fa") / "many.fasta"
    lengths = list(rng.integers(1, 400, 300)) + [1, 2, 35000]  # tiny ones and a titin-sized one
    path.write_text("".join(f">p{i}\n{''.join(rng.choice(aa, n))}\n" for i, n in enumerate(lengths)))
    return path


def run(src, out, fmt, model, **kw):
    return run_prediction(src, out, OutputFormat(fmt), str(model), **kw)


def test_jobs_give_the_same_output(cnn_dir, many_fasta, tmp_path):
    one = run(many_fasta, tmp_path / "one.tsv", "tsv", cnn_dir, jobs=1, block_residues=5000)
    two = run(many_fasta, tmp_path / "two.tsv", "tsv", cnn_dir, jobs=2, block_residues=5000)
    assert one["written"] == two["written"] == 303
    assert (tmp_path / "one.tsv").read_text() == (tmp_path / "two.tsv").read_text()
    scores = read_predictions(tmp_path / "one.tsv")
    assert scores["p302"].scores.shape == (35000,) and scores["p300"].scores.shape == (1,)


def test_estimator_predict_gives_the_calls_of_idrkit_predict(cnn_dir, tiny_records, tmp_path):
    model = load_model(cnn_dir)
    seqs = [r.sequence for r in tiny_records]
    for track, threshold, min_length, max_gap in [("pdb", None, 5, 3), ("nox", 0.3, 0, 0), ("pdb", 0.6, 10, 1)]:
        options = CallOptions(track, threshold, min_length, max_gap)
        preds = list(predict_records(tiny_records, cnn_dir, options))
        direct = model.predict(seqs, threshold, track, min_length, max_gap)
        for p, calls in zip(preds, direct):
            assert p.track == track
            np.testing.assert_array_equal(p.calls, calls)
    # the model's own threshold is used unless one is given
    pdb = model.predict(seqs[:3], min_length=0, max_gap=0)
    np.testing.assert_array_equal(pdb[0], (model.predict_proba(seqs[:1])[0] >= 0.45).astype(np.uint8))


def test_dask_local_cluster_equals_local_run(cnn_dir, many_fasta, tmp_path):
    pytest.importorskip("distributed")
    for fmt in ("csv", "regions"):
        run(many_fasta, tmp_path / f"local.{fmt}", fmt, cnn_dir, block_residues=20000)
        run(many_fasta, tmp_path / f"dask.{fmt}", fmt, cnn_dir, engine="dask", jobs=2, block_residues=20000)
        assert (tmp_path / f"local.{fmt}").read_text() == (tmp_path / f"dask.{fmt}").read_text()


@pytest.mark.parametrize("fmt", ["tsv", "json", "caid", "summary"])
def test_resume_after_interruption(cnn_dir, many_fasta, tmp_path, fmt, monkeypatch):
    full = tmp_path / f"full.{fmt}"
    run(many_fasta, full, fmt, cnn_dir, block_residues=3000)
    out = tmp_path / f"out.{fmt}"
    real = pr.predict_block
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(pr, "predict_block", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(many_fasta, out, fmt, cnn_dir, block_residues=3000)
    partial = out.with_name(out.name + ".partial")
    assert not out.exists() and partial.exists()
    # a torn last block: garbage after the last complete block must be cut away on resume
    if partial.is_file():
        with open(partial, "ab") as fh:
            fh.write(b"p999\t1\tM\t0.5")
    assert partial.exists()
    monkeypatch.setattr(pr, "predict_block", real)
    stats = run(many_fasta, out, fmt, cnn_dir, block_residues=3000, resume=True)
    assert stats["skipped"] > 0 and stats["written"] == 303
    if fmt == "summary":  # one row per protein: the same rows in the same order
        assert out.read_text() == full.read_text()
        assert not partial.exists()
        return
    a, b = read_predictions(full), read_predictions(out)
    if fmt == "caid":  # one file per protein: the folder has no order of its own
        assert sorted(a) == sorted(b)
    else:
        assert list(a) == list(b) == [f"p{i}" for i in range(303)]
    for k in a:
        np.testing.assert_array_equal(a[k].scores, b[k].scores)
        np.testing.assert_array_equal(a[k].calls, b[k].calls)
    assert not partial.exists() and not out.with_name(out.name + ".partial.progress").exists()


def test_blocks_in_flight_are_bounded(cnn_dir, tmp_path, monkeypatch):
    """The reader runs at most a few blocks ahead of the writer: memory does not grow with the input."""
    from idrkit.io.files import PredictionWriter

    read, written = {"n": 0}, {"n": 0}
    real_iter, real_write = pr.iter_records, PredictionWriter.write_block
    ahead = []

    def counting_iter(*a, **k):
        for rec in real_iter(*a, **k):
            read["n"] += 1
            ahead.append(read["n"] - written["n"])
            yield rec

    def counting_write(self, preds):
        written["n"] += len(preds)
        return real_write(self, preds)

    monkeypatch.setattr(pr, "iter_records", counting_iter)
    monkeypatch.setattr(PredictionWriter, "write_block", counting_write)
    path = tmp_path / "big.fasta"
    path.write_text("".join(f">s{i}\nMKVLAAEEPKSSPQ\n" for i in range(3000)))
    run(path, tmp_path / "o.csv", "csv", cnn_dir, block_residues=1400, jobs=2)
    assert written["n"] == 3000
    assert max(ahead) <= 2 * 2 * 100 + 100 + 1  # 2*jobs blocks of 100 sequences, plus the one being read


def test_blocks_bound_residues_and_proteins():
    recs = [Record(f"r{i}", "M" * n) for i, n in enumerate([5] * 10 + [50, 50, 50])]
    sizes = [[len(r) for r in b] for b in blocks(recs, max_residues=60, max_proteins=4)]
    assert sizes == [[5, 5, 5, 5], [5, 5, 5, 5], [5, 5, 50], [50, 50]]


def test_map_bounded_keeps_order_and_limit():
    in_flight, most = [], [0]

    class Future:
        def __init__(self, x):
            self.x = x
            in_flight.append(x)
            most[0] = max(most[0], len(in_flight))

        def result(self):
            in_flight.remove(self.x)
            return self.x * 10

    assert list(map_bounded(Future, range(7), 3)) == [(i, i * 10) for i in range(7)]
    assert most[0] == 3


def test_empty_input_stops_before_any_output(cnn_dir, tmp_path):
    (tmp_path / "empty.fasta").write_text("")
    with pytest.raises(InputError, match="no records"):
        run(tmp_path / "empty.fasta", tmp_path / "o.tsv", "tsv", cnn_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.fasta"]


def test_unknown_track_is_refused(tmp_path, cnn_dir):
    from idrkit.models import get_family

    one_track = get_family("cnn")()
    one_track.arrays, one_track.tracks = load_model(cnn_dir).arrays, ("pdb",)
    with pytest.raises(InputError, match="no 'nox' track"):
        list(predict_records([Record("a", "MKV")], one_track, CallOptions("nox")))


def test_cli_predict_progress_and_jobs(cnn_dir, many_fasta, tmp_path, capsys):
    assert main(["predict", str(many_fasta), "-o", str(tmp_path / "o.json"), "--model", str(cnn_dir),
                 "--jobs", "2", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "wrote 303 proteins" in err and "residues/s" in err


def test_predict_disorder_single_and_batch_agree(cnn_dir):
    import idrkit

    seqs = ["MKVLAAEEPKSSPQ", "MSEEPKSSPQESEKPAEG", "M"]
    batch = idrkit.predict_disorder(seqs, model=cnn_dir)
    for s, b in zip(seqs, batch):
        np.testing.assert_allclose(idrkit.predict_disorder(s, model=cnn_dir), b, atol=1e-6)


def test_jobs_default_and_explicit_give_identical_outputs(tmp_path, monkeypatch):
    rng = np.random.default_rng(9)
    aa = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    path = tmp_path / "large.fasta"
    path.write_text("".join(f">q{i}\n{''.join(rng.choice(aa, n))}\n" for i, n in enumerate(rng.integers(50, 900, 2400))))
    assert path.stat().st_size >= pr.LARGE_INPUT_BYTES  # large enough to start workers by default
    monkeypatch.setattr(pr, "available_cores", lambda: 2)
    assert pr.default_jobs(path) == 2 and pr.default_jobs(tmp_path / "none.fasta") == 1
    outs = {}
    for name, jobs in (("default", None), ("one", 1), ("two", 2)):
        stats = run_prediction(path, tmp_path / f"{name}.tsv", OutputFormat("tsv"), "fast", jobs=jobs)
        assert stats["written"] == 2400
        outs[name] = (tmp_path / f"{name}.tsv").read_text()
    assert outs["default"] == outs["one"] == outs["two"]


def test_small_inputs_start_no_workers(tmp_path, monkeypatch):
    (tmp_path / "s.fasta").write_text(">a\nMKVLAAEEPKSSPQ\n")
    monkeypatch.setattr(pr, "available_cores", lambda: 8)
    seen = []
    real = pr._map_blocks

    def spy(todo, model_path, options, jobs, *rest):
        seen.append(jobs)
        return real(todo, model_path, options, jobs, *rest)

    monkeypatch.setattr(pr, "_map_blocks", spy)
    run_prediction(tmp_path / "s.fasta", tmp_path / "o.tsv", OutputFormat("tsv"), "fast")
    assert seen == [1]


def test_progress_is_shown_by_default_only_on_a_terminal_for_large_inputs(tmp_path, monkeypatch):
    big = tmp_path / "big.fasta"
    big.write_bytes(b">a\n" + b"M" * pr.LARGE_INPUT_BYTES + b"\n")
    small = tmp_path / "small.fasta"
    small.write_text(">a\nMKV\n")

    class Terminal:
        def isatty(self):
            return True

    assert not pr.default_progress(big)  # pytest's stderr is not a terminal
    monkeypatch.setattr(pr.sys, "stderr", Terminal())
    assert pr.default_progress(big) and not pr.default_progress(small)


def test_shipped_models_by_name():
    from idrkit.models import shipped_models

    assert {"default", "fast", "function"} <= set(shipped_models())
    assert pr.model_folder("fast") == (pr.WEIGHTS / "fast").resolve()
    fast = pr.get_model("fast")
    assert fast.tracks == ("pdb", "nox") and fast.family == "cnn"
