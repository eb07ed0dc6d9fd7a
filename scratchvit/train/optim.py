"""Optimizers (SGD with momentum, AdamW), parameter groups for weight decay and layer-wise lr decay,
and gradient clipping by global norm.

Each optimizer follows PyTorch's update equations in PyTorch's order, so a run here tracks
`torch.optim.SGD` / `torch.optim.AdamW` to float32 rounding:

- SGD with momentum (Sutskever et al. 2013; dampening 0, as PyTorch's default):
      g = grad + wd * p;  b = mu * b + g (b = g at the first step);  g = g + mu * b (Nesterov) or b;
      p = p - lr * g
- AdamW (Loshchilov & Hutter 2019, Algorithm 2; Adam's moments and bias correction from Kingma &
  Ba 2015, Algorithm 1):
      p = p * (1 - lr * wd)                       decoupled weight decay, before the moments
      m = m + (1 - beta1) * (g - m)               PyTorch's lerp form of beta1 * m + (1 - beta1) * g
      v = v * beta2 + (1 - beta2) * g * g
      p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

Parameters are updated in place (their arrays keep identity, dtype and device); parameters whose
`.grad` is None are skipped. Every hyper-parameter is turned into a Python float before it meets
an array, so float32 stays float32 (a NumPy float64 scalar would silently upcast).

Parameter groups are dicts, as in PyTorch: {"params": [...], "lr": ..., "weight_decay": ...,
"lr_scale": ...}; a group without its own "lr" gets the optimizer's lr times its lr_scale, and a
schedule (scratchvit.train.schedule) sets every group's lr to its value times the group's lr_scale.
"""

from __future__ import annotations

import fnmatch
import re

import numpy as np

from .. import backend, kernels
from ..autograd import Tensor

_DESCRIPTIVE_KEYS = {"params", "param_names", "layer_id", "name"}  # group keys that no update reads


class Optimizer:
    """Base class: parameter groups, zero_grad, and state as arrays for checkpoints.

    params: an iterable of Parameters, or of dicts {"params": [...], <hyper-parameter>: value}.
    defaults: each optimizer's hyper-parameters; a group overrides any of them.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults, lr_scale=1.0)
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups = []
        self.state = {}  # id(parameter) -> dict of arrays and counters
        seen = set()
        for position, group in enumerate(groups):
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"parameter group {position} must be a dict with a 'params' list, got {group!r:.80}")
            group = dict(group)
            group["params"] = list(group["params"])
            for parameter in group["params"]:
                if not isinstance(parameter, Tensor):
                    raise TypeError(f"parameter group {position} holds a {type(parameter).__name__}, not a Tensor")
                if id(parameter) in seen:
                    raise ValueError(f"a parameter of shape {parameter.shape} appears in more than one parameter group")
                seen.add(id(parameter))
            unknown = set(group) - set(self.defaults) - _DESCRIPTIVE_KEYS
            if unknown:
                raise ValueError(
                    f"parameter group {position} has unknown keys {sorted(unknown)}; "
                    f"{type(self).__name__} knows {sorted(self.defaults)}"
                )
            lr_scale = float(group.get("lr_scale", 1.0))
            if "lr" not in group:
                group["lr"] = self.defaults["lr"] * lr_scale
            for name, value in self.defaults.items():
                group.setdefault(name, value)
            self.param_groups.append(group)

    def _parameters(self):
        return [parameter for group in self.param_groups for parameter in group["params"]]

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set .grad to None, as PyTorch's set_to_none)."""
        for parameter in self._parameters():
            parameter.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place, on its own device."""
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                if parameter.grad.shape != parameter.shape:
                    raise ValueError(
                        f"gradient of shape {parameter.grad.shape} for a parameter of shape {parameter.shape}"
                    )
                state = self.state.setdefault(id(parameter), {})
                with backend.on_device(parameter.device):
                    self._update(parameter.data, parameter.grad, state, group)

    def _update(self, param, grad, state: dict, group: dict) -> None:
        """Update the array `param` in place from `grad`; `state` is this parameter's own dict."""
        raise NotImplementedError

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"state": [per parameter, in group order: dict of arrays and ints, or None],
        "param_groups": [hyper-parameters with "params" as positions in that order]}.

        The arrays are the optimizer's own (not copies); a checkpoint writer copies them out.
        """
        state, groups, position = [], [], 0
        for group in self.param_groups:
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = list(range(position, position + len(group["params"])))
            position += len(group["params"])
            groups.append(saved)
            state.extend(self.state.get(id(parameter)) for parameter in group["params"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what state_dict() returned, onto this optimizer's parameters (same grouping).

        Arrays are copied to each parameter's device and dtype; hyper-parameters are restored.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"optimizer state has {len(saved_groups)} parameter groups, this optimizer has {len(self.param_groups)}"
            )
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {index}: optimizer state has {len(saved['params'])} parameters, "
                    f"this optimizer has {len(group['params'])}"
                )
        parameters = self._parameters()
        saved_state = state_dict["state"]
        if len(saved_state) != len(parameters):
            raise ValueError(
                f"optimizer state covers {len(saved_state)} parameters, this optimizer has {len(parameters)}"
            )
        new_state = {}
        for position, (parameter, entry) in enumerate(zip(parameters, saved_state, strict=True)):
            if entry is None:
                continue
            restored = {}
            for key, value in entry.items():
                if hasattr(value, "shape"):
                    if tuple(value.shape) != parameter.shape:
                        raise ValueError(
                            f"optimizer state {key!r} of parameter {position} has shape {tuple(value.shape)}, "
                            f"the parameter has {parameter.shape}"
                        )
                    array = backend.to_device(backend.to_numpy(value).astype(parameter.dtype), parameter.device)
                    restored[key] = array.copy() if array is value else array
                else:
                    restored[key] = value
            new_state[id(parameter)] = restored
        self.state = new_state
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            group.update({key: value for key, value in saved.items() if key != "params"})


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (no dampening), optional Nesterov momentum and
    L2 weight decay added to the gradient, as torch.optim.SGD."""

    def __init__(
        self, params, lr: float = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False
    ):
        _check_nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and momentum <= 0:
            raise ValueError(f"nesterov momentum needs momentum > 0, got momentum {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, param, grad, state, group) -> None:
        lr, momentum, weight_decay = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        nesterov = bool(group["nesterov"])
        if weight_decay:
            grad = grad + weight_decay * param  # a new array: .grad itself is left alone
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:  # the first step starts the buffer at the gradient, as PyTorch
                buffer = state["momentum_buffer"] = grad.copy()
            else:
                buffer *= momentum
                buffer += grad
            grad = grad + momentum * buffer if nesterov else buffer
        param -= lr * grad


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW.

    State per parameter: "step" (int), "exp_avg" (m) and "exp_avg_sq" (v), arrays of its shape.
    """

    def __init__(
        self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2
    ):
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, param, grad, state, group) -> None:
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = float(group["betas"][0]), float(group["betas"][1])
        xp = backend.xp_of(param)
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(param), exp_avg_sq=xp.zeros_like(param))
        state["step"] += 1
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        fused = kernels.update_kernel("adamw", param)  # the same equations in one launch (fast tier)
        if fused is not None:
            hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, step=step)
            fused(param, grad, exp_avg, exp_avg_sq, **hyper)
            return

        if weight_decay:
            param *= 1.0 - lr * weight_decay  # decoupled: shrink the weights, not the gradient
        # m <- lerp(m, g, 1 - beta1), in the branch PyTorch's lerp kernel takes for this weight
        weight = 1.0 - beta1
        difference = grad - exp_avg
        if weight < 0.5:
            difference *= weight
            exp_avg += difference
        else:
            difference *= 1.0 - weight
            xp.subtract(grad, difference, out=exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1.0 - beta2) * grad * grad

        step_size = lr / (1.0 - beta1**step)
        bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
        denominator = xp.sqrt(exp_avg_sq)
        denominator /= bias_correction2_sqrt
        denominator += eps
        update = -step_size * exp_avg
        update /= denominator
        param += update


def _check_nonnegative(**values) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def clip_grad_norm_(parameters, max_norm: float) -> float:
    """Scale the gradients in place so that their global L2 norm is at most max_norm
    (Pascanu et al. 2013), as torch.nn.utils.clip_grad_norm_: every gradient is multiplied by
    min(1, max_norm / (total_norm + 1e-6)). Parameters without a gradient are skipped.

    Returns the total norm before clipping, sqrt(sum over parameters of ||grad||^2), as a 0-d
    array on the gradients' device (as PyTorch returns a tensor): nothing waits for a GPU here.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    grads = [parameter.grad for parameter in parameters if parameter.grad is not None]
    if not grads:
        return np.zeros((), np.float32)
    xp = backend.xp_of(grads[0])
    with backend.on_device(backend.device_of(grads[0])):
        return _clip_on_device(xp, grads, max_norm)


def _clip_on_device(xp, grads: list, max_norm: float):
    norms = xp.stack([xp.linalg.norm(grad.reshape(-1)) for grad in grads])
    total_norm = xp.linalg.norm(norms)
    dtype = total_norm.dtype.type
    coefficient = xp.minimum(dtype(max_norm) / (total_norm + dtype(1e-6)), dtype(1.0))
    for grad in grads:
        grad *= coefficient.astype(grad.dtype)
    return total_norm


# ---- parameter groups ------------------------------------------------------------------------
def _no_weight_decay_names(model, no_weight_decay_list) -> set:
    names = set(no_weight_decay_list)
    if hasattr(model, "no_weight_decay"):
        names |= set(model.no_weight_decay())
    return names


def _is_listed(name: str, patterns: set) -> bool:
    """A parameter name matches an entry when equal to it, when it matches it as a shell pattern
    (timm's rule), or when its trailing dotted components equal it ("relative_position_bias_table"
    names every Swin block's table, as the Swin code's no_weight_decay_keywords)."""
    return any(
        name == pattern or fnmatch.fnmatchcase(name, pattern) or name.endswith("." + pattern) for pattern in patterns
    )


def _skips_weight_decay(name: str, parameter, patterns: set) -> bool:
    # timm: biases and norm weights (every tensor of rank <= 1) and the listed names go undecayed
    return parameter.ndim <= 1 or name.endswith(".bias") or _is_listed(name, patterns)


def param_groups_weight_decay(model, weight_decay: float = 1e-5, no_weight_decay_list=()) -> list:
    """Two parameter groups as timm's rule makes them: weight decay 0 for every parameter of rank
    <= 1 (biases, LayerNorm weights), for the names of the model's `no_weight_decay()` set
    (pos_embed, cls_token, mask_token, relative_position_bias_table, ...) and for names in
    no_weight_decay_list; `weight_decay` for the rest. Frozen parameters are left out.

    Returns [{"params", "param_names", "weight_decay": 0.0}, {"params", "param_names",
    "weight_decay": weight_decay}], empty groups dropped.
    """
    patterns = _no_weight_decay_names(model, no_weight_decay_list)
    no_decay = {"params": [], "param_names": [], "weight_decay": 0.0}
    decay = {"params": [], "param_names": [], "weight_decay": float(weight_decay)}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        group = no_decay if not weight_decay or _skips_weight_decay(name, parameter, patterns) else decay
        group["params"].append(parameter)
        group["param_names"].append(name)
    return [group for group in (no_decay, decay) if group["params"]]


_VIT_BLOCK = re.compile(r"^blocks\.(\d+)\.")
_SWIN_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.")
_SWIN_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.")
_STEM_NAMES = ("cls_token", "pos_embed", "absolute_pos_embed")


def _layer_id_function(names: list):
    """(layer id of a parameter name, number of blocks) for a ViT (blocks.i) or a Swin
    (layers.s.blocks.j, numbered through the stages) name list.

    ViT, as MAE's util/lr_decay.py (after BEiT): cls_token, pos_embed, patch_embed -> 0;
    blocks.i -> i + 1; the rest (final norm, head, ...) -> num_blocks + 1.
    Swin, as SimMIM's get_swin_layer_id: block j of stage s -> (blocks before stage s) + j + 1;
    patch merging shares the id of the block before it (timm puts it at the start of stage s).
    """
    vit_blocks = [int(match.group(1)) for match in map(_VIT_BLOCK.match, names) if match]
    swin_blocks = [(int(match.group(1)), int(match.group(2))) for match in map(_SWIN_BLOCK.match, names) if match]
    if vit_blocks:
        num_blocks = max(vit_blocks) + 1

        def block_id(name):
            match = _VIT_BLOCK.match(name)
            return int(match.group(1)) + 1 if match else None

    elif swin_blocks:
        depths = [0] * (max(stage for stage, _ in swin_blocks) + 1)
        for stage, block in swin_blocks:
            depths[stage] = max(depths[stage], block + 1)
        offsets = [sum(depths[:stage]) for stage in range(len(depths))]
        num_blocks = sum(depths)

        def block_id(name):
            match = _SWIN_BLOCK.match(name)
            if match:
                return offsets[int(match.group(1))] + int(match.group(2)) + 1
            match = _SWIN_DOWNSAMPLE.match(name)
            return offsets[int(match.group(1))] if match else None

    else:
        raise ValueError("layer-wise lr decay needs a model with blocks.i (ViT) or layers.s.blocks.j (Swin) parameters")

    def layer_id(name: str) -> int:
        if name in _STEM_NAMES or name.startswith("patch_embed"):
            return 0
        found = block_id(name)
        return num_blocks + 1 if found is None else found

    return layer_id, num_blocks


def param_groups_layer_decay(
    model, weight_decay: float = 0.05, layer_decay: float = 0.75, no_weight_decay_list=()
) -> list:
    """Parameter groups for fine-tuning with layer-wise lr decay (Clark et al. 2020, ELECTRA;
    BEiT; MAE Sec. A.1 / util/lr_decay.py): a parameter in layer `layer_id` of a model with
    num_layers blocks trains at lr * layer_decay ** (num_layers + 1 - layer_id), so the head runs at
    the full lr and the patch embedding at layer_decay ** (num_layers + 1). Weight decay as
    param_groups_weight_decay.

    Returns one group per (layer, decay or not), in the order of first appearance, each
    {"params", "param_names", "weight_decay", "lr_scale", "layer_id"}.
    """
    if not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    patterns = _no_weight_decay_names(model, no_weight_decay_list)
    named = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    layer_id, num_layers = _layer_id_function([name for name, _ in named])
    groups = {}
    for name, parameter in named:
        this_id = layer_id(name)
        no_decay = not weight_decay or _skips_weight_decay(name, parameter, patterns)
        key = (this_id, no_decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "param_names": [],
                "weight_decay": 0.0 if no_decay else float(weight_decay),
                "lr_scale": float(layer_decay) ** (num_layers + 1 - this_id),
                "layer_id": this_id,
            }
        groups[key]["params"].append(parameter)
        groups[key]["param_names"].append(name)
    return list(groups.values())


__all__ = ["SGD", "AdamW", "Optimizer", "clip_grad_norm_", "param_groups_layer_decay", "param_groups_weight_decay"]
