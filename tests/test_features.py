import numpy as np
import pytest

from idrkit.features import SCALES, FeatureSpec, entropy_windows, featurize, one_hot, scale_values, window_mean
from idrkit.records import encode


def test_one_hot_by_hand():
    oh = one_hot(encode("ACX"))
    assert oh.shape == (3, 21)
    assert oh[0, 0] == 1 and oh[1, 1] == 1 and oh[2, 20] == 1 and oh.sum() == 3


def test_scales_by_hand():
    raw = scale_values(encode("KDI"), standardised=False)
    names = list(SCALES)
    assert raw[0, names.index("hydropathy")] == pytest.approx(-3.9)
    assert raw[1, names.index("charge")] == -1 and raw[0, names.index("charge")] == 1
    assert raw[2, names.index("hydropathy")] == pytest.approx(4.5)
    assert raw[2, names.index("top_idp")] == pytest.approx(-0.486)
    assert len(SCALES) >= 8
    z = scale_values(encode("ACDEFGHIKLMNPQRSTVWY"))
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)


def test_window_mean_truncates_at_ends():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(window_mean(x, 1), [1.5, 2, 3, 4, 4.5])
    np.testing.assert_allclose(window_mean(x, 0), x)
    np.testing.assert_allclose(window_mean(x, 10), np.full(5, 3.0))


def test_entropy_of_windows():
    comp = window_mean(one_hot(encode("AAAA")), 1)
    assert entropy_windows(comp).tolist() == [0, 0, 0, 0]
    comp = window_mean(one_hot(encode("ACAC")), 10)  # half A, half C everywhere
    np.testing.assert_allclose(entropy_windows(comp), 1.0, atol=1e-6)


def test_featurize_columns_and_charge_windows():
    spec = FeatureSpec(composition_windows=[3], scale_windows=[1], entropy_windows=[3], charge_windows=[3])
    x = featurize("KKDA", spec)
    names = spec.names()
    assert x.shape == (4, len(names))
    col = names.index("ncpr3")
    np.testing.assert_allclose(x[:, col], [1.0, 1 / 3, 0.0, -0.5])
    fcr = names.index("fcr3")
    np.testing.assert_allclose(x[:, fcr], [1.0, 1.0, 2 / 3, 0.5])
    assert x[0, names.index("rel_position")] == 0 and x[3, names.index("rel_position")] == 1
    assert x[0, names.index("log_length")] == pytest.approx(np.log(4))
