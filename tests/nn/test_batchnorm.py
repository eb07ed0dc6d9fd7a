"""BatchNorm1d as torch.nn.BatchNorm1d: batch statistics in training with the unbiased running-variance
update, running statistics in eval, optional affine, state_dict keys, gradients by finite differences."""

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import backend, nn


def host(array) -> np.ndarray:
    return backend.to_numpy(array.data if isinstance(array, sv.Tensor) else array)


def reference_train(x: np.ndarray, eps: float):
    """Ioffe & Szegedy Algorithm 1 written out: (output, batch mean, biased batch variance), per channel."""
    axes = (0,) if x.ndim == 2 else (0, 2)
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps), mean.reshape(-1), variance.reshape(-1)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)], ids=["BC", "BCL"])
def test_training_normalises_with_batch_statistics_and_updates_the_running_ones(shape, device):
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm1d(4).to(device)
    running_mean, running_var = np.zeros(4), np.ones(4)
    count = shape[0] * (shape[2] if len(shape) == 3 else 1)
    for step in range(3):
        x = (3 + 2 * rng.standard_normal(shape)).astype(np.float32)
        out = bn(sv.Tensor(x, device=device))
        expected, mean, variance = reference_train(x.astype(np.float64), 1e-5)
        np.testing.assert_allclose(host(out), expected, rtol=1e-4, atol=1e-5)
        running_mean = 0.9 * running_mean + 0.1 * mean
        running_var = 0.9 * running_var + 0.1 * variance * count / (count - 1)  # torch: the unbiased variance
        np.testing.assert_allclose(host(bn.running_mean), running_mean, rtol=1e-5)
        np.testing.assert_allclose(host(bn.running_var), running_var, rtol=1e-5)
        assert int(host(bn.num_batches_tracked)) == step + 1
    assert host(bn.running_mean).dtype == np.float32 and host(bn.num_batches_tracked).dtype == np.int64


def test_eval_uses_the_running_statistics_and_leaves_them_alone(device):
    bn = nn.BatchNorm1d(3, eps=1e-6, affine=False).to(device)
    bn.load_state_dict(
        {
            "running_mean": np.array([1.0, -2.0, 0.5], np.float32),
            "running_var": np.array([4.0, 0.25, 1.0], np.float32),
            "num_batches_tracked": np.array(7),
        }
    )
    bn.eval()
    x = np.random.default_rng(1).standard_normal((1, 3)).astype(np.float32)  # a batch of one is fine in eval
    out = host(bn(sv.Tensor(x, device=device)))
    np.testing.assert_allclose(out, (x - [1.0, -2.0, 0.5]) / np.sqrt(np.array([4.0, 0.25, 1.0]) + 1e-6), rtol=1e-5)
    np.testing.assert_array_equal(host(bn.running_mean), [1.0, -2.0, 0.5])
    assert int(host(bn.num_batches_tracked)) == 7


def test_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None)
    batches = [np.random.default_rng(seed).standard_normal((5, 2)).astype(np.float32) for seed in range(4)]
    for batch in batches:
        bn(sv.Tensor(batch))
    np.testing.assert_allclose(host(bn.running_mean), np.mean([b.mean(axis=0) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        host(bn.running_var), np.mean([b.var(axis=0, ddof=1) for b in batches], axis=0), rtol=1e-5
    )


def test_affine_scales_and_shifts_and_state_dict_keys_are_torchs():
    bn = nn.BatchNorm1d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm1d(3, affine=False).state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    bn.weight.data[:] = [1.0, 2.0, -1.0]
    bn.bias.data[:] = [0.0, 0.5, 3.0]
    x = np.random.default_rng(2).standard_normal((8, 3)).astype(np.float32)
    expected = reference_train(x.astype(np.float64), 1e-5)[0] * [1.0, 2.0, -1.0] + [0.0, 0.5, 3.0]
    np.testing.assert_allclose(host(bn(sv.Tensor(x))), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4)], ids=["BC", "BCL"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradients_match_finite_differences(shape, training):
    rng = np.random.default_rng(3)
    bn = nn.BatchNorm1d(3).train(training)
    bn.running_mean.data[:] = [0.3, -0.2, 1.0]
    bn.running_var.data[:] = [2.0, 0.5, 1.5]
    bn.weight = nn.Parameter(rng.standard_normal(3))  # float64, as finite differences need
    bn.bias = nn.Parameter(rng.standard_normal(3))
    x = sv.Tensor(rng.standard_normal(shape), requires_grad=True)
    # gradcheck perturbs the inputs in place, so the layer's own parameters can be inputs
    sv.gradcheck(lambda x, weight, bias: bn(x), (x, bn.weight, bn.bias))


def test_bad_input_raises_clear_errors():
    bn = nn.BatchNorm1d(4)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4\) expects \(B, 4\) or \(B, 4, L\), got shape \(2, 3\)"):
        bn(sv.Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="needs more than 1 value per channel"):
        bn(sv.Tensor(np.zeros((1, 4), np.float32)))
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        nn.BatchNorm1d(0)
    with pytest.raises(ValueError, match="momentum must be in"):
        nn.BatchNorm1d(4, momentum=1.5)


def test_the_buffers_keep_their_shapes_through_a_checkpoint(tmp_path):
    from scratchvit.io import read_checkpoint, save_checkpoint

    bn = nn.BatchNorm1d(3)
    bn(sv.Tensor(np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32)))
    state = read_checkpoint(save_checkpoint(tmp_path / "bn.npz", bn)).state_dict
    assert state["num_batches_tracked"].shape == () and int(state["num_batches_tracked"]) == 1  # torch's 0-d counter
    restored = nn.BatchNorm1d(3)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(host(restored.running_var), host(bn.running_var))
