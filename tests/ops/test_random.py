"""dropout and drop_path: the mask scales kept values by 1 / keep, the gradient is the mask,
drop_path drops whole samples, eval mode is the identity, sv.manual_seed reproduces masks."""

from __future__ import annotations

import numpy as np
import pytest
from strategies import host, leaf

import scratchvit as sv
from scratchvit import ops as F


def test_dropout_zeroes_or_scales_and_its_gradient_is_the_mask(device):
    sv.manual_seed(0)
    x = leaf(np.full((50, 40), 2.0), device)
    out = F.dropout(x, p=0.25)
    values = host(out)
    assert set(np.unique(values)) == {0.0, 2.0 / 0.75}
    assert abs((values == 0).mean() - 0.25) < 0.03  # 2000 draws: 4 standard deviations
    out.backward(device.xp.ones(x.shape))
    np.testing.assert_array_equal(host(x.grad), values / 2.0)


def test_drop_path_drops_whole_samples(device):
    sv.manual_seed(1)
    x = leaf(np.ones((64, 3, 2)), device)
    values = host(F.drop_path(x, drop_prob=0.5))
    per_sample = values.reshape(64, -1)
    assert np.all(per_sample == per_sample[:, :1])  # one decision per sample
    assert set(np.unique(per_sample)) == {0.0, 2.0}
    assert 10 < (per_sample[:, 0] == 0).sum() < 54


def test_eval_mode_and_p_zero_are_the_identity_and_p_one_zeroes(device):
    x = leaf(np.arange(6.0).reshape(2, 3) + 1, device)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.drop_path(x, 0.5, training=False) is x
    assert F.drop_path(x, 0.0) is x
    np.testing.assert_array_equal(host(F.dropout(x, 1.0)), np.zeros((2, 3)))
    np.testing.assert_array_equal(host(F.drop_path(x, 1.0)), np.zeros((2, 3)))


def test_manual_seed_reproduces_the_masks(device):
    x = leaf(np.ones((8, 8)), device, dtype=np.float32)
    sv.manual_seed(42)
    first = host(F.dropout(x, 0.5)), host(F.drop_path(x, 0.5))
    sv.manual_seed(42)
    second = host(F.dropout(x, 0.5)), host(F.drop_path(x, 0.5))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[0].dtype == np.float32
    sv.manual_seed(43)
    assert not np.array_equal(host(F.dropout(x, 0.5)), first[0])


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_probabilities_raise_naming_the_argument(device, p):
    x = leaf(np.ones(3), device)
    with pytest.raises(ValueError, match=rf"dropout p must be in \[0, 1\], got {p}"):
        F.dropout(x, p)
    with pytest.raises(ValueError, match=rf"drop_prob must be in \[0, 1\], got {p}"):
        F.drop_path(x, p)
