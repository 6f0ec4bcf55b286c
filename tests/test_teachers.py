import numpy as np

from idrkit.cache import ArrayCache
from idrkit.teachers import teacher_scores


def test_teacher_cache_hit_and_miss(tmp_path):
    calls = []

    def fake_teacher(seqs):
        calls.append(list(seqs))
        return [np.linspace(0, 1, len(s), dtype=np.float32) for s in seqs]

    cache = ArrayCache("teacher-fake", root=tmp_path)
    first = teacher_scores("fake", ["MKV", "ACDEF"], fn=fake_teacher, cache=cache)
    assert calls == [["MKV", "ACDEF"]]
    # a fresh cache object reads the shards from disk: only the new sequence is computed
    again = ArrayCache("teacher-fake", root=tmp_path)
    second = teacher_scores("fake", ["ACDEF", "WWWW", "MKV"], fn=fake_teacher, cache=again)
    assert calls[1] == ["WWWW"]
    np.testing.assert_allclose(second[0], first[1])
    np.testing.assert_allclose(second[2], first[0])
    assert len(ArrayCache("teacher-fake", root=tmp_path)) == 3


def test_unknown_teacher_is_a_clear_error():
    import pytest

    from idrkit.errors import InputError
    from idrkit.teachers import get_teacher

    with pytest.raises(InputError, match="unknown teacher 'nope'"):
        get_teacher("nope")
