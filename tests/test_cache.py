import numpy as np

from idrkit.cache import ArrayCache, cache_root, sequence_hash64, sequence_key


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IDRKIT_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("IDRKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "idrkit"


def test_keys_are_stable_and_distinct():
    assert sequence_key("MKV") == sequence_key("MKV") != sequence_key("MKW")
    assert 0 <= sequence_hash64("MKV") < 2 ** 64


def test_arrays_survive_a_new_cache_object_and_compute_only_misses(tmp_path):
    cache = ArrayCache("emb/odd name", root=tmp_path)
    assert cache.folder.name == "emb_odd_name"
    calls = []

    def fn(seqs):
        calls.append(list(seqs))
        return [np.full((len(s), 2), len(s), dtype=np.float16) for s in seqs]

    first = cache.compute(["MK", "MKV", "MK"], fn)
    assert calls == [["MK", "MKV"]] and [a.shape for a in first] == [(2, 2), (3, 2), (2, 2)]
    again = ArrayCache("emb/odd name", root=tmp_path)
    assert len(again) == 2 and again.get("MKV").tolist() == [[3, 3]] * 3 and again.get("W") is None
    again.compute(["W", "MKV"], fn)
    assert calls[-1] == ["W"]
    assert not list(tmp_path.rglob("*.tmp.npz"))  # shards are written atomically
