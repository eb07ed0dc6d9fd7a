"""Finite-difference gradient checking: does an op's backward agree with its forward?

For a random upstream gradient r (never all ones: for softmax and layer norm the all-ones
gradient is exactly zero, which would hide a wrong backward), the analytic gradient of
L(x) = sum(f(x) * r) from backward() is compared with central differences

    dL/dx[i] ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

in float64, where the truncation error is O(eps^2) and the rounding error O(1e-16 / eps).
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences."""


def _as_output_tensor(output) -> Tensor:
    if not isinstance(output, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(output).__name__}")
    return output


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4, seed: int = 0) -> float:
    """Check fn's gradient with respect to every input tensor that requires grad.

    fn: called as fn(*inputs), returns a Tensor. inputs: a tuple of Tensors (float64) and other
    arguments passed through unchanged. Passes when |analytic - numeric| <= atol + rtol * |numeric|
    elementwise; raises GradcheckError naming the input and its worst element otherwise.
    Returns the largest relative error max|analytic - numeric| / max|numeric| over the inputs.
    """
    inputs = tuple(inputs)
    checked = [i for i, value in enumerate(inputs) if isinstance(value, Tensor) and value.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input tensor has requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {inputs[i].dtype}; finite differences need float64")
        inputs[i].grad = None

    output = _as_output_tensor(fn(*inputs))
    xp = output.xp
    upstream = xp.asarray(np.random.default_rng(seed).standard_normal(output.shape))
    output.backward(upstream)

    def objective() -> float:
        with no_grad():
            return float((fn(*inputs).data * upstream).sum())

    worst_relative = 0.0
    for i in checked:
        tensor = inputs[i]
        analytic = backend.to_numpy(tensor.grad) if tensor.grad is not None else np.zeros(tensor.shape)
        numeric = np.zeros(tensor.shape)
        tensor.data = tensor.xp.ascontiguousarray(tensor.data)
        flat = tensor.data.reshape(-1)  # a view: perturbing it perturbs the input in place
        for element in range(flat.size):
            original = float(flat[element])
            flat[element] = original + eps
            plus = objective()
            flat[element] = original - eps
            minus = objective()
            flat[element] = original
            numeric.reshape(-1)[element] = (plus - minus) / (2 * eps)
        error = np.abs(analytic - numeric)
        scale = max(float(np.abs(numeric).max(initial=0.0)), 1e-12)
        worst_relative = max(worst_relative, float(error.max(initial=0.0)) / scale)
        excess = error - (atol + rtol * np.abs(numeric))
        if excess.size and excess.max() > 0:
            index = np.unravel_index(int(excess.argmax()), excess.shape)
            raise GradcheckError(
                f"gradient of input {i} (shape {tensor.shape}) is wrong at index {tuple(int(k) for k in index)}: "
                f"analytic {analytic[index]:.10g}, numeric {numeric[index]:.10g} "
                f"(max abs error {error.max():.3g}, atol {atol}, rtol {rtol})"
            )
    return worst_relative
