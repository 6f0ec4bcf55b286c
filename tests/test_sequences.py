import pickle

import numpy as np
import pytest

from idrkit.errors import InputError
from idrkit.sequences import (Prediction, clean_sequence, encode, iter_records, labels_to_string,
                              read_predictions, read_records, write_predictions)


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


def test_labelled_three_line_format(tmp_path):
    p = write(tmp_path, "l.fasta", ">DP1\nMKVLE\n11-00\n>DP2\nAC\n01\n")
    recs = read_records(p, require_labels=True)
    assert recs[0].labels.tolist() == [1, 1, -1, 0, 0]
    assert labels_to_string(recs[0].labels) == "11-00"


def test_rare_residues_accepted_and_encoded():
    seq = clean_sequence("ACBZJUOX", "r")
    codes = encode(seq)
    # U -> C, O -> K, B/Z/J/X -> unknown (20)
    assert codes.tolist() == [0, 1, 20, 20, 20, 1, 8, 20]


@pytest.mark.parametrize("text, message", [
    (">a\nMK1V\n", "invalid character '1' at position 3"),
    (">a\nMK#V\n", "invalid character '#' at position 3"),
    (">a\n\n>b\nMK\n", "record 'a': empty sequence"),
    (">a\nMK\n>a\nMV\n", "record 'a': duplicate id"),
    (">a\nMKV\n101\n>b\nMK\n1\n", "record 'b': 1 labels for a sequence of 2 residues"),
    ("MKV\n", "sequence data before the first '>' header"),
])
def test_bad_fasta_is_a_clear_error(tmp_path, text, message):
    p = write(tmp_path, "bad.fasta", text)
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
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


def test_pickle_bad_labels(tmp_path):
    p = tmp_path / "d.pkl"
    p.write_bytes(pickle.dumps([{"id": "q", "sequence": "MKV", "label": [1, 2, 0]}]))
    with pytest.raises(InputError, match="record 'q': labels must be 0, 1 or -1"):
        read_records(p)


def test_competition_csv(tmp_path):
    p = write(tmp_path, "c.csv", "proteinID,sequence,IDRs\nx,MKV,110\ny,AC,00\n")
    recs = read_records(p)
    assert recs[0].labels.tolist() == [1, 1, 0] and recs[1].sequence == "AC"
    p2 = write(tmp_path, "c2.csv", "proteinID,sequence\nx,MKV\n")
    assert read_records(p2)[0].labels is None


def _preds():
    s1 = np.array([0.9, 0.8, 0.2, 0.1], dtype=np.float32)
    s2 = np.array([0.3, 0.7], dtype=np.float32)
    return [Prediction("P1", "MKVL", s1, np.array([1, 1, 0, 0], np.uint8), [(1, 2)]),
            Prediction("sp|P2|Y", "AC", s2, np.array([0, 1], np.uint8), [(2, 2)])]


@pytest.mark.parametrize("fmt, name", [("tsv", "o.tsv"), ("caid", "caid_out"), ("json", "o.json")])
def test_writers_round_trip_scores(tmp_path, fmt, name):
    out = tmp_path / name
    assert write_predictions(_preds(), out, fmt, {"model": "m"}) == 2
    back = read_predictions(out)
    assert set(back) == {"P1", "sp|P2|Y"}
    np.testing.assert_allclose(back["P1"], [0.9, 0.8, 0.2, 0.1], atol=1e-4)
    np.testing.assert_allclose(back["sp|P2|Y"], [0.3, 0.7], atol=1e-4)


def test_caid_files_one_per_protein(tmp_path):
    write_predictions(_preds(), tmp_path / "c", "caid")
    files = sorted(f.name for f in (tmp_path / "c").iterdir())
    assert files == ["P1.caid", "sp_P2_Y.caid"]
    lines = (tmp_path / "c" / "P1.caid").read_text().splitlines()
    assert lines[0] == ">P1" and lines[1] == "1\tM\t0.9\t1"


def test_csv_and_region_fasta(tmp_path):
    write_predictions(_preds(), tmp_path / "o.csv", "csv")
    assert (tmp_path / "o.csv").read_text().splitlines() == ["proteinID,sequence,IDRs", "P1,MKVL,1100",
                                                             "sp|P2|Y,AC,01"]
    write_predictions(_preds(), tmp_path / "o.fasta", "fasta")
    text = (tmp_path / "o.fasta").read_text().splitlines()
    assert text[0].startswith(">P1|1-2 mean_score=0.850") and text[1] == "MK"
    assert text[2].startswith(">sp|P2|Y|2-2") and text[3] == "C"


def test_failed_write_leaves_no_file(tmp_path):
    def broken():
        yield _preds()[0]
        raise InputError("record 'boom': bad")

    for fmt in ("tsv", "caid", "json"):
        out = tmp_path / f"out_{fmt}"
        with pytest.raises(InputError):
            write_predictions(broken(), out, fmt)
        assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_streaming_reader_is_lazy(tmp_path):
    p = write(tmp_path, "s.fasta", ">a\nMK\n>b\nM#\n")
    it = iter_records(p)
    assert next(it).id == "a"  # the bad second record is not read yet
    with pytest.raises(InputError):
        next(it)
