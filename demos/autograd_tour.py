# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A tour of the autograd engine
#
# Every model in scratchvit trains through one small reverse-mode engine (`scratchvit/autograd.py`).
# Here we build graphs by hand, run `backward()`, and check each gradient against the formula a
# student would derive on paper; then we let `sv.gradcheck` compare backward passes with finite
# differences, and watch it catch a backward that is wrong on purpose.
#
# Run it as a script (`python demos/autograd_tour.py`) or open it as a notebook with jupytext.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import scratchvit as sv
from scratchvit import ops as F
from scratchvit.backend import to_numpy, xp_of

OUT = os.environ.get("SCRATCHVIT_OUT") or os.path.join("scratchvit-out", "demos", "autograd_tour")
device = sv.default_device()  # $SCRATCHVIT_DEVICE, else cpu
print(f"device {device}, figures go to {os.path.abspath(OUT)}")

# %% [markdown]
# ## 1. Scalars: a graph by hand
#
# $L = (a b + \tanh b)^2$ with $a = 2$, $b = -1$. Name the middle $c = a b + \tanh b$; the chain rule gives
#
# - $\partial L / \partial a = 2c \cdot b$
# - $\partial L / \partial b = 2c \cdot (a + 1 - \tanh^2 b)$
#
# (float32 tensors: expect agreement to about 6 significant digits.)

# %%
a = sv.tensor(2.0, requires_grad=True, device=device)
b = sv.tensor(-1.0, requires_grad=True, device=device)
c = a * b + b.tanh()
loss = c**2
loss.backward()

c_value, b_value = c.item(), b.item()
print(f"L = {loss.item():.6f}")
print(f"dL/da: engine {float(to_numpy(a.grad)):+.5f}   formula 2c*b               = {2 * c_value * b_value:+.5f}")
print(
    f"dL/db: engine {float(to_numpy(b.grad)):+.5f}   formula 2c*(a + 1 - tanh²b) = "
    f"{2 * c_value * (a.item() + 1 - np.tanh(b_value) ** 2):+.5f}"
)

# %% [markdown]
# ## 2. A small matrix: $L = \sum (X W + b) \odot R$
#
# With a fixed weighting $R$ of the outputs, the gradients are $\partial L/\partial X = R W^\top$,
# $\partial L/\partial W = X^\top R$ and $\partial L/\partial b = \sum_{\text{rows}} R$: the bias was
# broadcast over the rows, so its gradient sums over them (the engine's `unbroadcast`).

# %%
rng = np.random.default_rng(0)
X = sv.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True, device=device)
W = sv.tensor(rng.standard_normal((4, 2)).astype(np.float32), requires_grad=True, device=device)
bias = sv.tensor(np.zeros(2, np.float32), requires_grad=True, device=device)
R = rng.standard_normal((3, 2)).astype(np.float32)
((X @ W + bias) * sv.tensor(R, device=device)).sum().backward()

x_host, w_host = X.numpy(), W.numpy()
for name, engine, formula in (("X", X.grad, R @ w_host.T), ("W", W.grad, x_host.T @ R), ("bias", bias.grad, R.sum(0))):
    engine = to_numpy(engine)
    print(f"dL/d{name} {engine.shape}: max |engine - formula| = {np.abs(engine - formula).max():.2e}")
print("dL/dW from the engine:\n", to_numpy(W.grad))

# %% [markdown]
# ## 3. A diamond: two paths from one input
#
# $x$ feeds both $u = 3x$ and $v = x^2$, and $L = u v$. The gradient reaching $x$ is the sum over both
# paths: $\partial L/\partial x = v \cdot 3 + u \cdot 2x = 9x^2$. The engine visits $x$ only after both
# $u$ and $v$ have sent their share (a topological order), and adds them.

# %%
x = sv.tensor(1.5, requires_grad=True, device=device)
u, v = 3 * x, x**2
(u * v).backward()
print(
    f"dL/dx: engine {float(to_numpy(x.grad)):.6f}   via u: {v.item() * 3:.6f} + via v: {u.item() * 2 * x.item():.6f}"
    f"   formula 9x² = {9 * x.item() ** 2:.6f}"
)

# %% [markdown]
# ## 4. Finite differences: what `sv.gradcheck` compares with
#
# For $L(x) = \sum f(x) \odot r$, the central difference $(L(x + \epsilon e_i) - L(x - \epsilon e_i)) / 2\epsilon$
# approaches $\partial L / \partial x_i$ with an error $O(\epsilon^2)$ from truncation plus
# $O(10^{-16}/\epsilon)$ from rounding in float64. Here is one element of softmax's gradient, and the
# error against $\epsilon$ (the figure): too large an $\epsilon$ and too small both hurt.

# %%
logits = sv.tensor(rng.standard_normal((2, 5)), requires_grad=True, device=device)  # float64
upstream = rng.standard_normal((2, 5))
F.softmax(logits, axis=-1).backward(upstream)
analytic = float(to_numpy(logits.grad)[0, 1])


def objective(values: np.ndarray) -> float:
    with sv.no_grad():
        return float((F.softmax(sv.tensor(values, device=device), axis=-1).numpy() * upstream).sum())


def central_difference(eps: float) -> float:
    step = np.zeros((2, 5))
    step[0, 1] = eps
    values = logits.numpy()
    return (objective(values + step) - objective(values - step)) / (2 * eps)


print(f"softmax d/dx[0, 1]: analytic {analytic:.12f}, numeric (eps 1e-6) {central_difference(1e-6):.12f}")
epsilons = np.logspace(-12, -1, 23)
errors = [abs(central_difference(eps) - analytic) for eps in epsilons]

# %%
os.makedirs(OUT, exist_ok=True)
figure, axis = plt.subplots(figsize=(5, 3.4))
axis.loglog(epsilons, np.maximum(errors, 1e-18), marker="o", markersize=3)
axis.set(xlabel="epsilon", ylabel="|numeric - analytic|", title="central difference error, float64 softmax")
axis.grid(alpha=0.3, which="both")
path = os.path.join(OUT, "finite_difference_error.png")
figure.savefig(path, dpi=120, bbox_inches="tight")
plt.close(figure)
print(f"smallest error {min(errors):.1e} at eps {epsilons[int(np.argmin(errors))]:.0e}; figure {os.path.abspath(path)}")

# %% [markdown]
# ## 5. `sv.gradcheck` on a few ops
#
# It perturbs every input element in turn and returns the worst relative error
# max |analytic − numeric| / max |numeric|; it raises `GradcheckError` beyond its tolerance.

# %%
x64 = sv.tensor(rng.standard_normal((3, 6)), requires_grad=True, device=device)
gamma = sv.tensor(1 + 0.1 * rng.standard_normal(6), requires_grad=True, device=device)
beta = sv.tensor(0.1 * rng.standard_normal(6), requires_grad=True, device=device)
checks = {
    "softmax": (lambda t: F.softmax(t, axis=-1), (x64,)),
    "gelu": (F.gelu, (x64,)),
    "layer_norm": (lambda t, w, b: F.layer_norm(t, w, b), (x64, gamma, beta)),
    "x @ x^T": (lambda t: t @ t.T, (x64,)),
}
for name, (function, inputs) in checks.items():
    print(f"{name:<10} worst relative error {sv.gradcheck(function, inputs):.1e}")

# %% [markdown]
# ### A backward that is wrong on purpose
#
# `tanh`'s derivative is $1 - \tanh^2 x$. Forget the square and the gradient is still smooth and
# plausible, but `gradcheck` names the input, the element and both numbers.
#
# And why `gradcheck` weights the output with a random $r$ rather than taking `f(x).sum()`: the rows
# of a softmax always sum to 1, so the gradient of `softmax(x).sum()` is exactly zero, and any
# backward that returns zeros, right or wrong, would pass.


# %%
class WrongTanh(sv.Function):
    def forward(self, x):
        self.out = xp_of(x).tanh(x)
        return self.out

    def backward(self, grad):
        return grad * (1 - self.out)  # wrong: should be 1 - out**2


try:
    sv.gradcheck(WrongTanh.apply, (x64,))
except sv.GradcheckError as error:
    print("GradcheckError:", error)

summed = sv.tensor(rng.standard_normal((2, 5)), requires_grad=True, device=device)
F.softmax(summed, axis=-1).sum().backward()
print(f"gradient of softmax(x).sum(): max |g| = {np.abs(to_numpy(summed.grad)).max():.1e}")
