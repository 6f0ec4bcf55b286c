"""Readers (path, handle, text), output formats, safe output files and prediction files read back."""

import io
import json
import pickle

import numpy as np
import pytest

from idrkit.errors import InputError, OutputError
from idrkit.io import (OutputFormat, PredictionWriter, check_output, format_scores, iter_records,
                       labelled_fasta_text, read_predictions, read_records, records_from_text, residue_rows,
                       table_text)
from idrkit.records import Prediction


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_plain_fasta_multiline_lowercase_and_stop(tmp_path):
    p = write(tmp_path, "a.fasta", ">sp|P1|X desc here\nmkv\nLLE*\n\n>P2\nACD\n")
    recs = read_records(p)
    assert [r.id for r in recs] == ["sp|P1|X", "P2"]
    assert recs[0].sequence == "MKVLLE"
    assert recs[0].labels is None


def test_labelled_three_line_format_round_trips(tmp_path):
    p = write(tmp_path, "l.fasta", ">DP1\nMKVLE\n11-00\n>DP2\nAC\n01\n")
    recs = read_records(p, require_labels=True)
    assert recs[0].labels.tolist() == [1, 1, -1, 0, 0]
    assert labelled_fasta_text(recs) == ">DP1\nMKVLE\n11-00\n>DP2\nAC\n01\n"


def test_readers_take_paths_handles_and_text(tmp_path):
    text = ">a\nMKV\n>b\nACD\n"
    p = write(tmp_path, "x.fasta", text)
    from_path = [(r.id, r.sequence) for r in iter_records(p)]
    from_handle = [(r.id, r.sequence) for r in iter_records(io.StringIO(text), "fasta")]
    from_text = [(r.id, r.sequence) for r in records_from_text(text)]
    assert from_path == from_handle == from_text == [("a", "MKV"), ("b", "ACD")]
    csv_text = "proteinID,sequence,IDRs\nx,MKV,110\n"
    assert [r.labels.tolist() for r in records_from_text(csv_text, "csv")] == [[1, 1, 0]]


@pytest.mark.parametrize("name, text", [("bom.fasta", "\ufeff>a\nMKV\n"),
                                        ("bom.csv", "\ufeffproteinID,sequence\na,MKV\n"),
                                        ("bom_noext", "\ufeff>a\nMKV\n")])
def test_byte_order_mark_is_accepted(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8"))
    assert [(r.id, r.sequence) for r in read_records(p)] == [("a", "MKV")]


@pytest.mark.parametrize("text, message", [
    (">a\nMK1V\n", "invalid character '1' at position 3"),
    (">a\nMK#V\n", "invalid character '#' at position 3"),
    (">a\n\n>b\nMK\n", "record 'a': empty sequence"),
    (">a\nMK\n>a\nMV\n", "record 'a': duplicate id"),
    (">a\nMKV\n101\n>b\nMK\n1\n", "record 'b': 1 labels for a sequence of 2 residues"),
    ("MKV\n", "sequence data before the first '>' header"),
    ("", "no records"),
    ("\n\n", "no records"),
    (">\nMKV\n", "header without an id"),
])
def test_bad_fasta_is_a_clear_error(tmp_path, text, message):
    p = write(tmp_path, "bad.fasta", text)
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        read_records(p)


def test_csv_ids_with_control_characters_are_refused(tmp_path):
    p = write(tmp_path, "c.csv", 'proteinID,sequence\n"a\tb",MKV\n')
    with pytest.raises(InputError, match="control character"):
        read_records(p)


def test_bad_label_character(tmp_path):
    p = write(tmp_path, "bad.csv", "proteinID,sequence,IDRs\nx,MKV,1a0\n")
    with pytest.raises(InputError, match="record 'x': label character 'a' at position 2"):
        read_records(p)


def test_competition_pickle_with_lists_and_arrays(tmp_path):
    data = [{"id": "p0", "sequence": "MKV", "label": np.array([1, 0, 0])},
            {"id": "p1", "sequence": "ACDE", "label": [0, 0, 1, 1]},
            {"id": "p2", "sequence": "WW"}]
    p = tmp_path / "d.pkl"
    p.write_bytes(pickle.dumps(data))
    recs = read_records(p)
    assert recs[0].labels.tolist() == [1, 0, 0]
    assert recs[1].labels.tolist() == [0, 0, 1, 1]
    assert recs[2].labels is None


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_pickle_refuses_code(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps([{"id": "x", "sequence": "MK", "label": Evil()}]))
    with pytest.raises(InputError, match="unsafe or invalid pickle: refusing to load (posix|os|nt).system"):
        read_records(p)


@pytest.mark.parametrize("label, message", [([1, 2, 0], "labels must be 0, 1 or -1"),
                                            ([0.5, 1, 0], "labels must be 0, 1 or -1")])
def test_pickle_bad_labels(tmp_path, label, message):
    p = tmp_path / "d.pkl"
    p.write_bytes(pickle.dumps([{"id": "q", "sequence": "MKV", "label": label}]))
    with pytest.raises(InputError, match=f"record 'q': {message}"):
        read_records(p)


def test_pickle_that_asks_for_gigabytes_is_refused(tmp_path):
    # protocol 4: an ndarray of 10**10 float64 built by calling numpy.ndarray((10**10,), 'f8'), 60 bytes
    bomb = (b"\x80\x04\x8c\x05numpy\x8c\x07ndarray\x93J\x00\xe4\x0bT\x85\x8c\x02f8\x86R\x85.")
    p = tmp_path / "bomb.pkl"
    p.write_bytes(bomb)
    with pytest.raises(InputError, match="bomb.pkl"):
        read_records(p)
    big_string = b"\x80\x04\x8d\x00\x00\x00\x00\x01\x00\x00\x00x."  # BINUNICODE8 declaring 2**32 bytes
    p.write_bytes(big_string)
    with pytest.raises(InputError, match="not a readable pickle|unsafe or invalid"):
        read_records(p)


def test_competition_csv(tmp_path):
    p = write(tmp_path, "c.csv", "proteinID,sequence,IDRs\nx,MKV,110\ny,AC,00\n")
    recs = read_records(p)
    assert recs[0].labels.tolist() == [1, 1, 0] and recs[1].sequence == "AC"
    p2 = write(tmp_path, "c2.csv", "proteinID,sequence\nx,MKV\n")
    assert read_records(p2)[0].labels is None


def test_streaming_reader_is_lazy(tmp_path):
    p = write(tmp_path, "s.fasta", ">a\nMK\n>b\nM#\n")
    it = iter_records(p)
    assert next(it).id == "a"  # the bad second record is not read yet
    with pytest.raises(InputError):
        next(it)


# ---------------------------------------------------------------------------------------------- writers


def test_vectorised_scores_match_printf():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(20000), rng.random(2000) ** 8, [0, 1, 0.5, 0.99995, 0.00099995, 1e-12,
                                                                       0.0001, 0.001, 0.09999, 0.099995]])
    values = values.astype(np.float32)
    assert format_scores(values).tolist() == [f"{v:.4g}" for v in values.tolist()]


def _preds():
    s1 = np.array([0.9, 0.8, 0.2, 0.1], dtype=np.float32)
    s2 = np.array([0.3, 0.7], dtype=np.float32)
    return [Prediction("P1", "MKVL", s1, np.array([1, 1, 0, 0], np.uint8), [(1, 2)]),
            Prediction("sp|P2|Y", "AC", s2, np.array([0, 1], np.uint8), [(2, 2)])]


def test_residue_rows_equal_a_loop_per_residue():
    preds = _preds()
    loop = "".join(f"{p.id}\t{i}\t{aa}\t{s:.4g}\t{c}\n" for p in preds
                   for i, (aa, s, c) in enumerate(zip(p.sequence, p.scores.tolist(), p.calls.tolist()), 1))
    assert residue_rows(preds) == loop


def write_all(preds, path, fmt, meta=None):
    writer = PredictionWriter(path, OutputFormat(fmt), meta)
    writer.write_block(preds)
    return writer.close()


@pytest.mark.parametrize("fmt, name", [("tsv", "o.tsv"), ("caid", "caid_out"), ("json", "o.json"),
                                       ("csv", "o.csv")])
def test_writers_round_trip_scores_and_calls(tmp_path, fmt, name):
    out = tmp_path / name
    assert write_all(_preds(), out, fmt, {"model": "m"}) == 2
    back = read_predictions(out)
    assert list(back) == ["P1", "sp|P2|Y"]
    assert back["P1"].calls.tolist() == [1, 1, 0, 0] and back["sp|P2|Y"].calls.tolist() == [0, 1]
    if fmt != "csv":  # the competition CSV holds calls only
        np.testing.assert_allclose(back["P1"].scores, [0.9, 0.8, 0.2, 0.1], atol=1e-4)
        np.testing.assert_allclose(back["sp|P2|Y"].scores, [0.3, 0.7], atol=1e-4)


def test_json_output_is_valid_json_with_meta(tmp_path):
    write_all(_preds(), tmp_path / "o.json", "json", {"model": "m", "track": "pdb"})
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["meta"] == {"model": "m", "track": "pdb"}
    assert doc["proteins"][0] == {"id": "P1", "sequence": "MKVL", "scores": [0.9, 0.8, 0.2, 0.1],
                                  "calls": "1100", "regions": [{"start": 1, "end": 2}]}


def test_caid_files_one_per_protein(tmp_path):
    write_all(_preds(), tmp_path / "c", "caid")
    files = sorted(f.name for f in (tmp_path / "c").iterdir())
    assert files == ["P1.caid", "sp_P2_Y.caid"]
    lines = (tmp_path / "c" / "P1.caid").read_text().splitlines()
    assert lines[0] == ">P1" and lines[1] == "1\tM\t0.9\t1"


def test_csv_quotes_ids_and_region_fasta(tmp_path):
    preds = _preds()
    preds[0].id = 'P1,"x"'
    write_all(preds, tmp_path / "o.csv", "csv")
    assert (tmp_path / "o.csv").read_text().splitlines() == ["proteinID,sequence,IDRs", '"P1,""x""",MKVL,1100',
                                                             "sp|P2|Y,AC,01"]
    write_all(_preds(), tmp_path / "o.fasta", "fasta")
    text = (tmp_path / "o.fasta").read_text().splitlines()
    assert text[0].startswith(">P1|1-2 mean_score=0.850") and text[1] == "MK"
    assert text[2].startswith(">sp|P2|Y|2-2") and text[3] == "C"


@pytest.mark.parametrize("fmt", ["tsv", "caid", "json"])
def test_aborted_write_leaves_no_file(tmp_path, fmt):
    out = tmp_path / f"out_{fmt}"
    writer = PredictionWriter(out, OutputFormat(fmt))
    writer.write_block(_preds()[:1])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_output_checks(tmp_path):
    src = write(tmp_path, "in.fasta", ">a\nMK\n")
    with pytest.raises(InputError, match="the output is the input file"):
        check_output(tmp_path / "." / "in.fasta", OutputFormat("tsv"), [src])
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        check_output(tmp_path / "d", OutputFormat("tsv"))
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds files other than .caid files"):
        check_output(tmp_path / "d", OutputFormat("caid"))


def test_a_second_writer_on_the_same_output_is_refused(tmp_path):
    first = PredictionWriter(tmp_path / "o.tsv", OutputFormat("tsv"))
    with pytest.raises(OutputError, match="another idrkit run is writing this output"):
        PredictionWriter(tmp_path / "o.tsv", OutputFormat("tsv"))
    first.write_block(_preds())
    assert first.close() == 2
    assert len(read_predictions(tmp_path / "o.tsv")) == 2


def test_resume_with_other_options_is_refused(tmp_path):
    w = PredictionWriter(tmp_path / "o.tsv", OutputFormat("tsv"), options={"track": "pdb", "threshold": None})
    w.write_block(_preds()[:1])
    w.abort(keep=True)
    with pytest.raises(InputError, match="'pdb' then, 'nox' now"):
        PredictionWriter(tmp_path / "o.tsv", OutputFormat("tsv"), resume=True, options={"track": "nox",
                                                                                        "threshold": None})
    w = PredictionWriter(tmp_path / "o.tsv", OutputFormat("tsv"), resume=True,
                         options={"track": "pdb", "threshold": None})
    assert w.done == {"P1"}
    w.write_block(_preds()[1:])
    w.close()
    assert list(read_predictions(tmp_path / "o.tsv")) == ["P1", "sp|P2|Y"]


def test_table_text():
    assert table_text(["a", "b"], [{"a": 1, "b": 0.5}, {"a": "x", "b": float("nan")}]) == \
        "a\tb\n1\t0.5000\nx\tnan\n"


def test_tsv_calls_are_read_back_and_bad_files_named(tmp_path):
    p = write(tmp_path, "p.tsv", "# model=x\nid\tposition\tresidue\tscore\tcall\na\t1\tM\t0.7\t1\na\t2\tK\t0.2\t0\n")
    got = read_predictions(p)["a"]
    assert got.calls.tolist() == [1, 0] and got.scores.tolist() == [0.7, 0.2]
    p = write(tmp_path, "q.tsv", "id\tposition\tresidue\tscore\na\t1\tM\tx\n")
    with pytest.raises(InputError, match="q.tsv: row 2: 'x' is not a number"):
        read_predictions(p)


# ----------------------------------------------------------------------------------- property-based tests

from hypothesis import HealthCheck, given, settings  # noqa: E402  (the [test] extra)
from hypothesis import strategies as st  # noqa: E402

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)

VALID = {
    "x.fasta": b">sp|P1|X desc\nMKVLLE\nACD*\n>P2\nmkv\n",
    "l.fasta": b">DP1\nMKVLE\n11-00\n>DP2\nAC\n01\n",
    "x.csv": b"proteinID,sequence,IDRs\nx,MKV,110\n\"y,1\",AC,00\n",
    "x.pkl": pickle.dumps([{"id": "p0", "sequence": "MKV", "label": np.array([1, 0, 0])},
                           {"id": "p1", "sequence": "ACDE", "label": [0, 0, 1, 1]}, {"id": "p2", "sequence": "WW"}]),
    "p.tsv": b"# m=x\nid\tposition\tresidue\tscore\tcall\na\t1\tM\t0.7\t1\na\t2\tK\t0.2\t0\n",
    "p.json": b'{"meta": {}, "proteins": [{"id": "a", "sequence": "MK", "scores": [0.5, 0.1], "calls": "10"}]}',
    "p.caid": b">a\n1\tM\t0.5\t1\n2\tK\t0.25\t0\n",
}


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, pos, value in edits:
        if not out:
            out.append(value)
            continue
        pos %= len(out)
        if kind == 0:
            out[pos] = value
        elif kind == 1:
            del out[pos]
        else:
            out.insert(pos, value)
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8)


def read_any(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    if name.startswith("p."):
        return read_predictions(path)
    return read_records(path)


@PROPERTY
@given(name=st.sampled_from(sorted(VALID)), data=st.binary(max_size=400))
def test_random_bytes_never_raise_anything_but_an_input_error(tmp_path_factory, name, data):
    tmp = tmp_path_factory.mktemp("fuzz")
    try:
        read_any(tmp, name, data)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc).strip()


@PROPERTY
@given(name=st.sampled_from(sorted(VALID)), edits=EDITS)
def test_mutated_valid_files_never_raise_anything_but_an_input_error(tmp_path_factory, name, edits):
    tmp = tmp_path_factory.mktemp("fuzz")
    try:
        read_any(tmp, name, mutate(VALID[name], edits))
    except InputError as exc:
        assert str(exc)


@PROPERTY
@given(text=st.text(max_size=300), fmt=st.sampled_from(["fasta", "csv"]))
def test_random_text_through_handles(text, fmt):
    try:
        list(records_from_text(text, fmt))
    except InputError as exc:
        assert str(exc)


IDS = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters=">",
                                     exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=12)
PROTEIN = st.tuples(IDS, st.text(alphabet="ACDEFGHIKLMNPQRSTVWYXBZJUO", min_size=1, max_size=60)).flatmap(
    lambda t: st.tuples(st.just(t[0]), st.just(t[1]),
                        st.lists(st.floats(0, 1, width=32), min_size=len(t[1]), max_size=len(t[1])),
                        st.lists(st.integers(0, 1), min_size=len(t[1]), max_size=len(t[1]))))


@PROPERTY
@given(proteins=st.lists(PROTEIN, min_size=1, max_size=6, unique_by=lambda p: p[0]),
       fmt=st.sampled_from(["tsv", "json", "csv", "caid"]))
def test_written_predictions_read_back_the_same(tmp_path_factory, proteins, fmt):
    from idrkit.io.formats import safe_filename
    from idrkit.regions import call_regions

    if fmt == "caid" and len({safe_filename(p[0]) for p in proteins}) < len(proteins):
        return  # two ids that share a file name are refused (tested elsewhere)
    preds = [Prediction(rid, seq, np.array(sc, np.float32), np.array(ca, np.uint8), call_regions(np.array(ca)))
             for rid, seq, sc, ca in proteins]
    out = tmp_path_factory.mktemp("rt") / f"o.{fmt}"
    write_all(preds, out, fmt, {"model": "m"})
    back = read_predictions(out)
    if fmt == "caid":
        assert sorted(back) == sorted(p.id for p in preds)
    else:
        assert list(back) == [p.id for p in preds]
    for p in preds:
        got = back[p.id]
        assert got.sequence == p.sequence
        assert got.calls.tolist() == p.calls.tolist()
        if fmt != "csv":
            np.testing.assert_allclose(got.scores, p.scores, rtol=5e-4, atol=1e-12)


@PROPERTY
@given(records=st.lists(st.tuples(IDS, st.text(alphabet="ACDEFGHIKLMNPQRSTVWY", min_size=1, max_size=40)),
                        min_size=1, max_size=5, unique_by=lambda r: r[0]))
def test_labelled_fasta_round_trip(records):
    from idrkit.records import Record

    recs = [Record(rid, seq, np.resize(np.array([1, 0, -1], np.int8), len(seq))) for rid, seq in records]
    back = list(records_from_text(labelled_fasta_text(recs)))
    assert [(r.id, r.sequence, r.labels.tolist()) for r in back] == [(r.id, r.sequence, r.labels.tolist())
                                                                     for r in recs]


def test_regions_and_summary_agree_with_the_per_residue_output(tmp_path):
    from idrkit.io.predictions import read_proteome

    preds = _preds()
    for fmt in ("tsv", "regions", "summary"):
        write_all(preds, tmp_path / f"o.{fmt}", fmt, {"model": "m"})
    per_residue = read_predictions(tmp_path / "o.tsv")
    regions = [ln.split("\t") for ln in (tmp_path / "o.regions").read_text().splitlines()[2:]]
    expected = []
    for rid, p in per_residue.items():
        calls = p.calls.astype(bool)
        edges = np.flatnonzero(np.diff(np.r_[0, calls.astype(int), 0]))
        for s, e in zip(edges[0::2], edges[1::2]):
            expected.append([rid, str(s + 1), str(e), str(e - s), f"{p.scores[s:e].mean():.4f}", "pdb"])
    assert regions == expected
    summary = [ln.split("\t") for ln in (tmp_path / "o.summary").read_text().splitlines()[2:]]
    assert [r[0] for r in summary] == list(per_residue)
    for row, p in zip(summary, per_residue.values()):
        n_regions = sum(1 for r in regions if r[0] == row[0])
        longest = max((int(r[3]) for r in regions if r[0] == row[0]), default=0)
        assert row[1:6] == [str(len(p.scores)), f"{p.calls.mean():.4f}", str(n_regions), str(longest),
                            f"{p.scores.mean():.4f}"]
    from_tsv, from_summary = read_proteome(tmp_path / "o.tsv"), read_proteome(tmp_path / "o.summary")
    np.testing.assert_allclose(from_tsv.fractions, from_summary.fractions, atol=1e-4)
    assert sorted(from_tsv.region_lengths.tolist()) == [1, 2] and from_summary.longest_only


def test_seen_ids_stay_exact_past_a_chunk(monkeypatch):
    from idrkit.io.readers import SeenIds

    monkeypatch.setattr(SeenIds, "CHUNK", 50)
    seen = SeenIds()
    assert all(seen.add(f"p{i}") for i in range(400))
    assert seen.older.size == 400 and not seen.recent
    assert not seen.add("p17") and not seen.add("p399") and seen.add("p400") and not seen.add("p400")


def test_atomic_folder_replaces_only_on_success(tmp_path):
    import pytest

    from idrkit.errors import OutputError
    from idrkit.io import atomic_folder

    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("failed while writing")
    assert (out / "old.txt").read_text() == "old" and not (out / "new.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left
    with atomic_folder(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    import os
    import stat

    umask = os.umask(0o022)
    try:
        with atomic_folder(tmp_path / "shared") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o755  # readable by others, as mkdir makes it
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        with atomic_folder(tmp_path / "file"):
            pass
