import numpy as np
import pytest

from idrkit.errors import InputError
from idrkit.records import (MAX_ID_LENGTH, Prediction, Record, check_id, clean_sequence, encode, labels_to_string,
                            parse_labels)


def test_rare_residues_accepted_and_encoded():
    seq = clean_sequence("ACBZJUOX", "r")
    # U -> C, O -> K, B/Z/J/X -> unknown (20)
    assert encode(seq).tolist() == [0, 1, 20, 20, 20, 1, 8, 20]


def test_clean_sequence_case_spaces_and_stop():
    assert clean_sequence(" mk v\nle*", "r") == "MKVLE"
    with pytest.raises(InputError, match="record 'r': empty sequence"):
        clean_sequence("*", "r")
    with pytest.raises(InputError, match="invalid character '€' at position 2"):
        clean_sequence("M€", "r")


@pytest.mark.parametrize("raw, expected", [("11-00", [1, 1, -1, 0, 0]), ([1, 0, -1, 0, 1], [1, 0, -1, 0, 1]),
                                           (np.array([0, 1, 1, 0, 0]), [0, 1, 1, 0, 0])])
def test_labels_from_text_lists_and_arrays(raw, expected):
    assert parse_labels(raw, 5, "r").tolist() == expected


@pytest.mark.parametrize("raw, message", [
    ([0.5, 1, 0], r"labels must be 0, 1 or -1 \(unknown\), found \[0.5\]"),
    ([True, False, True], "not a flat list"),
    ([[1], [0], [1]], "not a flat list"),
    ("1a0", "label character 'a' at position 2"),
    ([1, 0], "2 labels for a sequence of 3 residues"),
])
def test_bad_labels_are_refused(raw, message):
    with pytest.raises(InputError, match=message):
        parse_labels(raw, 3, "r")


def test_labels_round_trip_as_text():
    labels = np.array([1, 0, -1, 1], dtype=np.int8)
    assert labels_to_string(labels) == "10-1"
    assert parse_labels(labels_to_string(labels), 4, "r").tolist() == labels.tolist()


@pytest.mark.parametrize("rid", ["a\tb", "a\nb", "x\x00", "", "z" * (MAX_ID_LENGTH + 1)])
def test_ids_with_control_characters_or_too_long_are_refused(rid):
    with pytest.raises(InputError):
        check_id(rid)


def test_records_and_predictions_have_lengths():
    assert len(Record("a", "MKV")) == 3
    p = Prediction("a", "MK", np.zeros(2), np.zeros(2, np.uint8), [], "nox")
    assert len(p) == 2 and p.track == "nox"
