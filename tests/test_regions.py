import numpy as np

from idrkit.regions import binary_calls, call_regions, scores_to_calls, smooth_calls


def test_binary_calls_threshold_inclusive():
    assert binary_calls(np.array([0.1, 0.5, 0.49, 0.9])).tolist() == [0, 1, 0, 1]


def test_regions_are_one_based_inclusive():
    assert call_regions(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1])) == [(1, 2), (5, 5), (7, 9)]
    assert call_regions(np.zeros(4)) == []


def test_gap_merging_and_min_length():
    calls = np.array([1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0], dtype=np.uint8)
    merged = smooth_calls(calls, min_length=0, max_gap=2)
    assert call_regions(merged) == [(1, 8), (13, 14)]
    both = smooth_calls(calls, min_length=3, max_gap=2)
    assert call_regions(both) == [(1, 8)]
    # gaps at the ends are not "inside" disorder and stay
    assert smooth_calls(np.array([0, 1, 1, 1, 0]), 1, 3).tolist() == [0, 1, 1, 1, 0]


def test_scores_to_calls_defaults_keep_long_regions():
    scores = np.r_[np.full(10, 0.9), np.full(2, 0.1), np.full(10, 0.8), np.full(20, 0.1), np.full(3, 0.9)]
    assert call_regions(scores_to_calls(scores)) == [(1, 22)]
