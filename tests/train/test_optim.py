"""Optimizers against NumPy re-statements of their update equations, their properties (in place,
float32, grads left alone, state round trip), gradient clipping, and the parameter-group rules
for weight decay and layer-wise lr decay."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvit as sv
from scratchvit import backend, nn
from scratchvit.train import (
    SGD,
    AdamW,
    clip_grad_norm_,
    param_groups_layer_decay,
    param_groups_weight_decay,
)

SHAPES = [(3, 4), (4,), (2, 3, 2)]


def make_problem(seed: int, steps: int, device=backend.CPU):
    """Parameters on `device` and a list of per-step gradients (float32 NumPy), both seeded."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    grads = [[rng.standard_normal(shape).astype(np.float32) for shape in SHAPES] for _ in range(steps)]
    parameters = [nn.Parameter(sv.Tensor(array.copy(), device=device)) for array in initial]
    return initial, grads, parameters


def run(optimizer, parameters, grads, device=backend.CPU):
    for step_grads in grads:
        for parameter, grad in zip(parameters, step_grads, strict=True):
            parameter.grad = backend.to_device(grad.copy(), device)
        optimizer.step()
    return [backend.to_numpy(parameter.data) for parameter in parameters]


# ---- the update equations, re-stated in float64 ----------------------------------------------
def sgd_reference(initial, grads, lr, momentum, weight_decay, nesterov):
    """torch.optim.SGD's documented algorithm, dampening 0."""
    results = []
    for index, start in enumerate(initial):
        p, buffer = start.astype(np.float64), None
        for step_grads in grads:
            g = step_grads[index].astype(np.float64) + weight_decay * p
            if momentum:
                buffer = g.copy() if buffer is None else momentum * buffer + g
                g = g + momentum * buffer if nesterov else buffer
            p = p - lr * g
        results.append(p)
    return results


def adamw_reference(initial, grads, lr, betas, eps, weight_decay):
    """Loshchilov & Hutter 2019, Algorithm 2, with Adam's bias-corrected moments (Kingma & Ba 2015)."""
    beta1, beta2 = betas
    results = []
    for index, start in enumerate(initial):
        p = start.astype(np.float64)
        m, v = np.zeros_like(p), np.zeros_like(p)
        for t, step_grads in enumerate(grads, start=1):
            g = step_grads[index].astype(np.float64)
            p = p * (1 - lr * weight_decay)
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        results.append(p)
    return results


@given(
    seed=st.integers(0, 2**16),
    steps=st.integers(1, 6),
    lr=st.sampled_from([1e-3, 0.05, 0.3]),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    weight_decay=st.sampled_from([0.0, 1e-4, 0.05]),
    nesterov=st.booleans(),
)
def test_sgd_follows_its_equations(device, seed, steps, lr, momentum, weight_decay, nesterov):
    nesterov = nesterov and momentum > 0
    initial, grads, parameters = make_problem(seed, steps, device)
    optimizer = SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    ours = run(optimizer, parameters, grads, device)
    expected = sgd_reference(initial, grads, lr, momentum, weight_decay, nesterov)
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@given(
    seed=st.integers(0, 2**16),
    steps=st.integers(1, 6),
    lr=st.sampled_from([1e-4, 1e-3, 1e-2]),
    betas=st.sampled_from([(0.9, 0.999), (0.9, 0.95), (0.3, 0.99)]),  # 0.3: the other branch of lerp
    eps=st.sampled_from([1e-8, 1e-6]),
    weight_decay=st.sampled_from([0.0, 0.05, 0.3]),
)
def test_adamw_follows_its_equations(device, seed, steps, lr, betas, eps, weight_decay):
    initial, grads, parameters = make_problem(seed, steps, device)
    optimizer = AdamW(parameters, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    ours = run(optimizer, parameters, grads, device)
    expected = adamw_reference(initial, grads, lr, betas, eps, weight_decay)
    for got, want in zip(ours, expected, strict=True):
        # each step moves a weight by at most ~lr; float32 rounding of that is far below 1e-6 relative
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_adamw_first_step_moves_each_weight_by_lr_against_the_gradient_sign():
    # at t = 1, m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps) ~ lr * sign(g)
    _, grads, parameters = make_problem(0, 1)
    before = [parameter.data.copy() for parameter in parameters]
    run(AdamW(parameters, lr=1e-3, weight_decay=0.0), parameters, grads)
    for parameter, start, grad in zip(parameters, before, grads[0], strict=True):
        np.testing.assert_allclose(start - parameter.data, 1e-3 * np.sign(grad), rtol=1e-4)


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1), lambda p: AdamW(p, lr=0.1)])
def test_updates_are_in_place_in_float32_and_leave_grad_alone(make):
    _, grads, parameters = make_problem(1, 1)
    arrays = [parameter.data for parameter in parameters]
    given_grads = [grad.copy() for grad in grads[0]]
    for parameter, grad in zip(parameters, grads[0], strict=True):
        parameter.grad = grad
    make(parameters).step()
    for parameter, array, grad, original in zip(parameters, arrays, grads[0], given_grads, strict=True):
        assert parameter.data is array and parameter.data.dtype == np.float32
        assert parameter.grad is grad
        np.testing.assert_array_equal(grad, original)


def test_numpy_float64_hyperparameters_do_not_upcast():
    _, grads, parameters = make_problem(2, 2)
    optimizer = AdamW(parameters, lr=np.float64(1e-3), weight_decay=np.float64(0.1))
    run(optimizer, parameters, grads)
    assert all(parameter.data.dtype == np.float32 for parameter in parameters)
    assert all(
        value.dtype == np.float32
        for state in optimizer.state.values()
        for value in state.values()
        if hasattr(value, "dtype")
    )


def test_parameters_without_grad_are_skipped_and_adam_counts_steps_per_parameter():
    initial, grads, parameters = make_problem(3, 3)
    optimizer = AdamW(parameters, lr=1e-2, weight_decay=0.1)
    for step, step_grads in enumerate(grads):
        for index, (parameter, grad) in enumerate(zip(parameters, step_grads, strict=True)):
            parameter.grad = grad.copy() if (index != 1 or step == 2) else None
        optimizer.step()
    # parameter 1 got a gradient once, at the last step: it was untouched until then and is at step 1
    assert optimizer.state[id(parameters[1])]["step"] == 1
    assert optimizer.state[id(parameters[0])]["step"] == 3
    expected = adamw_reference([initial[1]], [[grads[2][1]]], 1e-2, (0.9, 0.999), 1e-8, 0.1)[0]
    np.testing.assert_allclose(parameters[1].data, expected, rtol=1e-5, atol=1e-6)


def test_zero_grad_sets_every_grad_to_none():
    _, grads, parameters = make_problem(4, 1)
    for parameter, grad in zip(parameters, grads[0], strict=True):
        parameter.grad = grad
    optimizer = SGD(parameters, lr=0.1)
    optimizer.zero_grad()
    assert all(parameter.grad is None for parameter in parameters)


def test_group_lr_defaults_to_the_optimizer_lr_times_its_lr_scale():
    _, _, parameters = make_problem(5, 0)
    groups = [
        {"params": parameters[:1], "lr_scale": 0.5},
        {"params": parameters[1:2], "lr": 0.3},
        {"params": parameters[2:]},
    ]
    optimizer = AdamW(groups, lr=0.1, weight_decay=0.0)
    assert [group["lr"] for group in optimizer.param_groups] == [0.05, 0.3, 0.1]
    assert [group["lr_scale"] for group in optimizer.param_groups] == [0.5, 1.0, 1.0]
    assert all(group["betas"] == (0.9, 0.999) for group in optimizer.param_groups)


def test_each_group_uses_its_own_weight_decay():
    initial, grads, parameters = make_problem(6, 3)
    optimizer = AdamW(
        [{"params": parameters[:1], "weight_decay": 0.0}, {"params": parameters[1:]}], lr=1e-2, weight_decay=0.2
    )
    ours = run(optimizer, parameters, grads)
    no_decay = adamw_reference(initial[:1], [g[:1] for g in grads], 1e-2, (0.9, 0.999), 1e-8, 0.0)
    decay = adamw_reference(initial[1:], [g[1:] for g in grads], 1e-2, (0.9, 0.999), 1e-8, 0.2)
    for got, want in zip(ours, no_decay + decay, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True), lambda p: AdamW(p, lr=1e-2)])
def test_state_dict_round_trip_continues_bit_identically(make):
    _, grads, parameters = make_problem(7, 6)
    optimizer = make(parameters)
    run(optimizer, parameters, grads[:3])
    copies = [nn.Parameter(parameter.data.copy()) for parameter in parameters]
    restored = make(copies)
    restored.load_state_dict(optimizer.state_dict())
    ours = run(optimizer, parameters, grads[3:])
    theirs = run(restored, copies, grads[3:])
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    # the restored state is a copy, not the original arrays
    assert all(
        restored.state[id(c)][key] is not optimizer.state[id(p)][key]
        for c, p in zip(copies, parameters, strict=True)
        for key in optimizer.state[id(p)]
        if hasattr(optimizer.state[id(p)][key], "shape")
    )


def test_state_dict_lists_state_per_parameter_and_groups_by_position():
    _, grads, parameters = make_problem(8, 1)
    optimizer = SGD([{"params": parameters[:2]}, {"params": parameters[2:], "lr": 0.5}], lr=0.1, momentum=0.9)
    parameters[1].grad = grads[0][1]
    optimizer.step()
    state = optimizer.state_dict()
    assert [group["params"] for group in state["param_groups"]] == [[0, 1], [2]]
    assert state["param_groups"][1]["lr"] == 0.5
    assert state["state"][0] is None and state["state"][2] is None
    np.testing.assert_array_equal(state["state"][1]["momentum_buffer"], grads[0][1])


def test_load_state_dict_rejects_a_state_of_another_layout():
    _, grads, parameters = make_problem(9, 1)
    optimizer = AdamW(parameters)
    run(optimizer, parameters, grads)
    state = optimizer.state_dict()
    with pytest.raises(ValueError, match="3 parameters, this optimizer has 2"):
        AdamW([nn.Parameter(parameter.data.copy()) for parameter in parameters[:2]]).load_state_dict(
            {"state": state["state"], "param_groups": [dict(state["param_groups"][0], params=[0, 1, 2])]}
        )
    with pytest.raises(ValueError, match="parameter groups"):
        AdamW([{"params": parameters[:1]}, {"params": parameters[1:]}]).load_state_dict(state)
    swapped = [nn.Parameter(np.zeros((9,), np.float32)), *[nn.Parameter(p.data.copy()) for p in parameters[1:]]]
    with pytest.raises(ValueError, match=r"shape \(3, 4\), the parameter has \(9,\)"):
        AdamW(swapped).load_state_dict(state)


def test_constructor_errors_name_the_problem():
    parameter = nn.Parameter(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="empty parameter list"):
        AdamW([])
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [parameter]}, {"params": [parameter]}], lr=0.1)
    with pytest.raises(ValueError, match="unknown keys \\['weight_deacy'\\]"):
        AdamW([{"params": [parameter], "weight_deacy": 0.1}])
    with pytest.raises(TypeError, match="not a Tensor"):
        SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="betas"):
        AdamW([parameter], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr must be >= 0"):
        SGD([parameter], lr=-1.0)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([parameter], lr=0.1, nesterov=True)


# ---- gradient clipping -----------------------------------------------------------------------
@given(seed=st.integers(0, 2**16), max_norm=st.sampled_from([0.1, 1.0, 5.0, 100.0]))
def test_clip_grad_norm_returns_the_total_norm_and_scales_to_max_norm(device, seed, max_norm):
    _, grads, parameters = make_problem(seed, 1, device)
    for parameter, grad in zip(parameters, grads[0], strict=True):
        parameter.grad = backend.to_device(grad.copy(), device)
    expected_norm = math.sqrt(sum(float((grad.astype(np.float64) ** 2).sum()) for grad in grads[0]))
    total = clip_grad_norm_(parameters, max_norm)
    assert total.shape == () and backend.device_of(total) == device  # stays on the device: no wait
    assert float(total) == pytest.approx(expected_norm, rel=1e-5)
    coefficient = min(1.0, max_norm / (expected_norm + 1e-6))  # torch.nn.utils.clip_grad_norm_'s rule
    for parameter, grad in zip(parameters, grads[0], strict=True):
        np.testing.assert_allclose(backend.to_numpy(parameter.grad), grad * coefficient, rtol=1e-5, atol=1e-7)
    clipped = math.sqrt(sum(float((backend.to_numpy(p.grad).astype(np.float64) ** 2).sum()) for p in parameters))
    assert clipped <= max_norm * (1 + 1e-5)


def test_clip_grad_norm_below_max_norm_changes_nothing_and_skips_missing_grads():
    _, grads, parameters = make_problem(10, 1)
    parameters[0].grad = grads[0][0].copy()
    total = clip_grad_norm_(parameters, 1e6)
    np.testing.assert_array_equal(parameters[0].grad, grads[0][0])
    assert float(total) == pytest.approx(float(np.linalg.norm(grads[0][0].astype(np.float64))), rel=1e-6)
    assert parameters[1].grad is None
    assert clip_grad_norm_([nn.Parameter(np.zeros(2, np.float32))], 1.0) == 0.0
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(parameters, 0.0)


# ---- parameter groups ------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)


class TinyViT(nn.Module):
    """The parameter names of a timm ViT, on a model small enough to read."""

    def __init__(self, depth=3, dim=4, with_no_weight_decay=True):
        super().__init__()
        self.cls_token = nn.Parameter(np.zeros((1, 1, dim), np.float32))
        self.pos_embed = nn.Parameter(np.zeros((1, 5, dim), np.float32))
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Linear(3, dim)
        self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 2)
        self.with_no_weight_decay = with_no_weight_decay

    def no_weight_decay(self):
        return {"pos_embed", "cls_token"} if self.with_no_weight_decay else set()


def names_by_decay(groups):
    return {group["weight_decay"]: set(group["param_names"]) for group in groups}


def test_weight_decay_groups_follow_timms_rule():
    model = TinyViT(depth=1)
    model.head.bias.requires_grad = False  # frozen: left out
    groups = param_groups_weight_decay(model, weight_decay=0.05, no_weight_decay_list=["head.weight"])
    assert names_by_decay(groups) == {
        0.0: {
            "cls_token",
            "pos_embed",
            "patch_embed.proj.bias",
            "blocks.0.norm1.weight",
            "blocks.0.norm1.bias",
            "blocks.0.fc.bias",
            "norm.weight",
            "norm.bias",
            "head.weight",
        },
        0.05: {"patch_embed.proj.weight", "blocks.0.fc.weight"},
    }
    by_name = dict(model.named_parameters())
    for group in groups:
        assert [id(p) for p in group["params"]] == [id(by_name[name]) for name in group["param_names"]]


def test_without_no_weight_decay_the_position_embedding_is_decayed():
    groups = param_groups_weight_decay(TinyViT(depth=1, with_no_weight_decay=False), weight_decay=0.05)
    decayed = names_by_decay(groups)[0.05]
    assert {"cls_token", "pos_embed"} <= decayed  # rank 3: only the model's list can exempt them


def test_weight_decay_patterns_match_shell_globs_and_trailing_names():
    class SwinLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Module()])
            self.layers[0].attn = nn.Module()
            self.layers[0].attn.relative_position_bias_table = nn.Parameter(np.zeros((9, 2), np.float32))
            self.layers[0].attn.qkv = nn.Linear(2, 6)
            self.mask_token = nn.Parameter(np.zeros((1, 1, 2), np.float32))

        def no_weight_decay(self):
            return {"relative_position_bias_table"}

    groups = param_groups_weight_decay(SwinLike(), weight_decay=0.1, no_weight_decay_list=["mask_*"])
    assert names_by_decay(groups) == {
        0.0: {"layers.0.attn.relative_position_bias_table", "layers.0.attn.qkv.bias", "mask_token"},
        0.1: {"layers.0.attn.qkv.weight"},
    }


def test_zero_weight_decay_gives_one_group():
    groups = param_groups_weight_decay(TinyViT(depth=1), weight_decay=0.0)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0


def mae_layer_id(name: str, depth: int) -> int:
    """MAE's util/lr_decay.py get_layer_id_for_vit, with num_layers = depth + 1."""
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
        return 0
    if name.startswith("blocks"):
        return int(name.split(".")[1]) + 1
    return depth + 1


def test_layer_decay_scales_follow_maes_rule():
    depth, decay = 3, 0.65
    model = TinyViT(depth=depth)
    groups = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=decay)
    seen = set()
    for group in groups:
        for name in group["param_names"]:
            layer = mae_layer_id(name, depth)
            assert group["layer_id"] == layer, name
            assert group["lr_scale"] == pytest.approx(decay ** (depth + 1 - layer)), name
            parameter = dict(model.named_parameters())[name]
            no_decay = parameter.ndim <= 1 or name in ("cls_token", "pos_embed")
            assert group["weight_decay"] == (0.0 if no_decay else 0.05), name
            seen.add(name)
    assert seen == {name for name, _ in model.named_parameters()}
    # the head trains at the full lr, the stem at decay ** (depth + 1)
    head = next(g for g in groups if "head.weight" in g["param_names"])
    stem = next(g for g in groups if "patch_embed.proj.weight" in g["param_names"])
    assert head["lr_scale"] == 1.0 and stem["lr_scale"] == pytest.approx(decay**4)
    # one group per (layer, decay or not), in order of first appearance
    keys = [(g["layer_id"], g["weight_decay"]) for g in groups]
    assert len(keys) == len(set(keys)) and keys[0] == (0, 0.0)


def test_layer_decay_groups_drive_the_optimizer_lr():
    groups = param_groups_layer_decay(TinyViT(depth=2), weight_decay=0.05, layer_decay=0.5)
    optimizer = AdamW(groups, lr=1e-3)
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (3 - group["layer_id"]))


def test_layer_decay_numbers_swin_blocks_through_the_stages():
    class Stage(nn.Module):
        def __init__(self, depth, downsample):
            super().__init__()
            if downsample:
                self.downsample = nn.Module()
                self.downsample.reduction = nn.Linear(4, 2, bias=False)
            self.blocks = nn.ModuleList([Block(2) for _ in range(depth)])

    class SwinLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = nn.Module()
            self.patch_embed.proj = nn.Linear(3, 2)
            self.layers = nn.ModuleList([Stage(2, False), Stage(1, True)])
            self.head = nn.Linear(2, 2)

    groups = param_groups_layer_decay(SwinLike(), layer_decay=0.5)
    layer_of = {name: group["layer_id"] for group in groups for name in group["param_names"]}
    # 3 blocks in all: stem 0, blocks 1..3, the merging before stage 1 shares block 2's id, head 4
    assert layer_of["patch_embed.proj.weight"] == 0
    assert layer_of["layers.0.blocks.0.fc.weight"] == 1
    assert layer_of["layers.0.blocks.1.fc.weight"] == 2
    assert layer_of["layers.1.downsample.reduction.weight"] == 2
    assert layer_of["layers.1.blocks.0.fc.weight"] == 3
    assert layer_of["head.weight"] == 4


def test_layer_decay_needs_blocks_and_a_valid_rate():
    with pytest.raises(ValueError, match="blocks"):
        param_groups_layer_decay(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups_layer_decay(TinyViT(), layer_decay=1.5)
