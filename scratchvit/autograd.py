"""Reverse-mode automatic differentiation: Tensor, Function, backward, no_grad.

A `Tensor` wraps an array (`.data`, numpy or cupy) and remembers the `Function` that made it.
Calling `loss.backward()` walks that graph from the loss back to the leaves in reverse
topological order, asking each Function for the gradient of its inputs given the gradient of
its output (the chain rule), and adds the results into the leaves' `.grad`.

The graph is walked with an explicit stack, never recursion, so a graph thousands of ops deep
is fine; and each Function drops what it saved as soon as its backward has run, so memory is
given back during the backward pass rather than after it.
"""

from __future__ import annotations

import numpy as np

from . import backend


class _GradMode:
    enabled = True


class no_grad:
    """Context manager (and decorator) under which ops record no graph.

    >>> with sv.no_grad():
    ...     logits = model(images)      # no Function is kept, no memory for backward
    """

    def __enter__(self):
        self._previous = _GradMode.enabled
        _GradMode.enabled = False

    def __exit__(self, *exc_info):
        _GradMode.enabled = self._previous

    def __call__(self, function):
        def wrapper(*args, **kwargs):
            with no_grad():
                return function(*args, **kwargs)

        wrapper.__name__ = function.__name__
        wrapper.__doc__ = function.__doc__
        return wrapper


def is_grad_enabled() -> bool:
    return _GradMode.enabled


def unbroadcast(grad, shape: tuple):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    A (3, 1) input broadcast to (2, 3, 4) in the forward pass received the same value in every
    position along the new axis 0 and the stretched axis 2, so its gradient is the sum over them.
    """
    # BEGIN SOLUTION 0.2 unbroadcast
    if grad.shape == shape:
        return grad
    leading = grad.ndim - len(shape)
    axes = tuple(range(leading)) + tuple(
        leading + i for i, size in enumerate(shape) if size == 1 and grad.shape[leading + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)
    # END SOLUTION 0.2


class _KernelTier:
    """Which tier `Function.apply` runs: "fast" (a registered kernel where one fits the inputs'
    backend and dtype, else the textbook op) or "textbook" (always the op's own forward and
    backward). SCRATCHVIT_KERNELS sets it at import; scratchvit.kernels.tier(...) changes it."""

    name = "fast"


# textbook Function class -> {(backend name, dtype): kernel class}, filled by scratchvit.kernels.registry
KERNELS: dict = {}


class Function:
    """One differentiable operation. Subclasses write, side by side on raw arrays:

    - `forward(self, *arrays, **params) -> array`: compute, and save on `self` only what the
      backward needs;
    - `backward(self, grad) -> gradient or tuple of gradients`, one per array input, each of the
      input's exact shape, or None where the input is not differentiable. It must not write
      into `grad`: the same array may be handed to several inputs.

    An input may be None (an optional argument such as a missing bias); forward receives None.

    `SomeOp.apply(*tensors, **params)` runs the forward and records the graph when grad mode is
    on and some input requires grad; `self.recording` tells the forward whether it will be.
    When the fast tier is on and a kernel is registered for this op and the inputs' backend and
    dtype (scratchvit.kernels), that kernel (a subclass of the op) runs in its place.
    """

    inputs: tuple = ()
    released = False
    recording = False

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params) -> Tensor:
        tensors = tuple(None if value is None else _as_tensor(value, like=inputs) for value in inputs)
        _check_same_device_and_dtype(cls.__name__, tensors)
        device = next((t.device for t in tensors if t is not None), backend.CPU)
        params = {name: _on_device(value, device) for name, value in params.items()}
        function = cls.implementation(tensors)()
        function.recording = _GradMode.enabled and any(t is not None and t.requires_grad for t in tensors)
        with backend.on_device(device):
            output = function.forward(*(None if t is None else t.data for t in tensors), **params)
        if function.recording:
            function.inputs = tensors
            return Tensor._from_op(output, function)
        return Tensor._from_op(output, None)

    @classmethod
    def implementation(cls, tensors: tuple) -> type:
        """The class that runs this op on `tensors`: a registered kernel, or the op itself."""
        kernels = KERNELS.get(cls)
        if kernels is None or _KernelTier.name != "fast":
            return cls
        for tensor in tensors:
            if tensor is not None:
                return kernels.get((backend.backend_name(tensor.data), tensor.data.dtype), cls)
        return cls

    def release(self) -> None:
        """Drop the inputs and saved arrays once backward has used them."""
        self.__dict__.clear()
        self.released = True


def _as_tensor(value, like) -> Tensor:
    """Wrap a Python number or array as a constant Tensor of the dtype/device of `like`'s tensors."""
    if isinstance(value, Tensor):
        return value
    reference = next((t for t in like if isinstance(t, Tensor)), None)
    if reference is None:
        return Tensor(value)
    if isinstance(value, (int, float, bool, np.generic)):
        with backend.on_device(reference.device):
            return Tensor(reference.xp.asarray(value, dtype=reference.dtype))
    return Tensor(value, device=reference.device)


def _on_device(value, device):
    """The one rule for host arrays: a NumPy array handed to an op (a mask, a condition, a
    constant) moves to the device of the op's tensors. Anything else is left as it is."""
    if isinstance(value, np.ndarray) and device.kind != "cpu":
        return backend.to_device(value, device)
    return value


def _check_same_device_and_dtype(op_name: str, tensors: tuple) -> None:
    tensors = [t for t in tensors if t is not None]  # optional inputs, e.g. a linear without bias
    if len(tensors) < 2:
        return
    first = tensors[0]
    first_device = first.device
    float_dtype = None
    for position, tensor in enumerate(tensors):
        if tensor.device != first_device:
            raise ValueError(
                f"{op_name}: input {position} is on {tensor.device} but input 0 is on {first_device}; "
                "move them to one device with .to(device) first (there is no silent copy)"
            )
        if tensor.dtype.kind == "f":
            if float_dtype is None:
                float_dtype = tensor.dtype
            elif tensor.dtype != float_dtype:
                raise TypeError(
                    f"{op_name}: input {position} has dtype {tensor.dtype} but an earlier input has "
                    f"{float_dtype}; cast one of them explicitly (there is no silent upcast)"
                )


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    >>> x = sv.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    >>> (x * x).sum().backward(); x.grad       # 2 * x
    """

    __array_priority__ = 1000  # make `ndarray + Tensor` call Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, device=None, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if _is_array(data):  # an array keeps its dtype (float64 for gradient checks)
            target = backend.device_of(data) if device is None else backend.get_device(device)
            data = backend.to_device(data, target)
        else:  # Python numbers and lists: floats become float32, as in PyTorch
            target = backend.get_device(device)
            with backend.on_device(target):
                data = target.xp.asarray(data)
                if data.dtype == np.float64:
                    data = data.astype(backend.DEFAULT_DTYPE)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"requires_grad needs a floating-point tensor, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None

    @classmethod
    def _from_op(cls, data, creator: Function | None) -> Tensor:
        tensor = cls.__new__(cls)
        tensor.data = data
        tensor.grad = None
        tensor.requires_grad = creator is not None
        tensor.creator = creator
        return tensor

    # ---- what it is -------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> backend.Device:
        return backend.device_of(self.data)

    @property
    def xp(self):
        return backend.xp_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        where = "" if self.device == backend.CPU else f", device='{self.device}'"
        return f"Tensor({backend.to_numpy(self.data)!r}{where}{grad})"

    # ---- leaving the graph ------------------------------------------------------------
    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._from_op(self.data, None)

    def item(self) -> float:
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return backend.read_scalar(self.data)  # with any check waiting on the GPU

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied off the GPU if needed)."""
        return backend.to_numpy(self.data)

    def to(self, device) -> Tensor:
        """This tensor on `device` (itself if already there). Gradients flow back across."""
        return shape.to_device(self, backend.get_device(device))

    def astype(self, dtype) -> Tensor:
        return elementwise.cast(self, dtype)

    def zero_grad(self) -> None:
        self.grad = None

    # ---- operators: each one is an op in scratchvit.ops -------------------------------
    def __add__(self, other):
        return elementwise.add(self, other)

    def __radd__(self, other):
        return elementwise.add(other, self)

    def __sub__(self, other):
        return elementwise.sub(self, other)

    def __rsub__(self, other):
        return elementwise.sub(other, self)  # other - self, never self - other

    def __mul__(self, other):
        return elementwise.mul(self, other)

    def __rmul__(self, other):
        return elementwise.mul(other, self)

    def __truediv__(self, other):
        return elementwise.div(self, other)

    def __rtruediv__(self, other):
        return elementwise.div(other, self)

    def __pow__(self, exponent):
        return elementwise.pow(self, exponent)

    def __rpow__(self, base):
        return elementwise.pow(base, self)

    def __neg__(self):
        return elementwise.neg(self)

    def __matmul__(self, other):
        return matmul_op(self, other)

    def __rmatmul__(self, other):
        return matmul_op(other, self)

    def __getitem__(self, index):
        return shape.getitem(self, index)

    def __lt__(self, other):
        return Tensor._from_op(self.data < _on_device(_raw(other), self.device), None)

    def __gt__(self, other):
        return Tensor._from_op(self.data > _on_device(_raw(other), self.device), None)

    # ---- methods, as in PyTorch -------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return reduce.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return reduce.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return reduce.max(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, correction=0):
        return reduce.var(self, axis, keepdims, correction)

    def argmax(self, axis=None):
        return Tensor._from_op(self.xp.argmax(self.data, axis=axis), None)

    def exp(self):
        return elementwise.exp(self)

    def log(self):
        return elementwise.log(self)

    def sqrt(self):
        return elementwise.sqrt(self)

    def tanh(self):
        return elementwise.tanh(self)

    def abs(self):
        return elementwise.abs(self)

    def reshape(self, *new_shape):
        return shape.reshape(self, _shape_args(new_shape))

    def flatten(self, start_axis=0):
        return shape.reshape(self, self.shape[:start_axis] + (-1,))

    def permute(self, *axes):
        return shape.permute(self, _shape_args(axes))

    def transpose(self, axis0=-2, axis1=-1):
        """Swap two axes (PyTorch's transpose(dim0, dim1)); for a full reordering use permute."""
        return shape.transpose(self, axis0, axis1)

    @property
    def T(self):
        return shape.permute(self, tuple(reversed(range(self.ndim))))

    def expand(self, *new_shape):
        return shape.expand(self, _shape_args(new_shape))

    # ---- the backward pass ------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) times `grad` into every leaf's `.grad`.

        grad: the upstream gradient, of self's shape; may be omitted for a one-element tensor.
        retain_graph: keep the saved arrays so backward can run through this graph again.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad")
        with backend.on_device(self.device):  # the GPU the graph's arrays are on is current
            self._backward(grad, retain_graph)

    def _backward(self, grad, retain_graph: bool) -> None:
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward() without grad needs a one-element tensor, got shape {self.shape}")
            grad = self.xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else self.xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): grad has shape {grad.shape} but the tensor has {self.shape}")

        pending = {id(self): grad}
        order = _topological_order(self)
        while order:
            # popped, not iterated: once its gradient is passed on, nothing here holds the tensor,
            # so its array (an activation no saved state needs) is freed unless the caller holds it
            tensor = order.pop()
            grad = pending.pop(id(tensor), None)
            if grad is None:  # every backward on the way returned None for it: it gets no gradient
                continue
            function = tensor.creator
            if function is None:
                tensor.grad = grad.copy() if tensor.grad is None else _accumulate(tensor.grad, grad)
                continue
            if function.released:
                raise RuntimeError(
                    "backward() through a graph a second time: its saved arrays were freed after the "
                    "first backward; pass retain_graph=True to the first call to keep them"
                )
            input_grads = function.backward(grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for tensor_in, grad_in in zip(function.inputs, input_grads, strict=True):
                if grad_in is None or tensor_in is None or not tensor_in.requires_grad:
                    continue
                key = id(tensor_in)
                pending[key] = pending[key] + grad_in if key in pending else grad_in
            if not retain_graph:
                function.release()


def _accumulate(total, grad):
    total += grad  # gradients from several backward calls add up, as in PyTorch
    return total


def _topological_order(root: Tensor) -> list:
    """Tensors that need a gradient, each after all the tensors it was computed from."""
    # BEGIN SOLUTION 0.1 _topological_order
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, children_done = stack.pop()
        if children_done:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        function = tensor.creator
        if function is not None:
            for tensor_in in function.inputs:
                if tensor_in is not None and tensor_in.requires_grad and id(tensor_in) not in visited:
                    stack.append((tensor_in, False))
    return order
    # END SOLUTION 0.1


def _is_array(value) -> bool:
    return hasattr(value, "__array_interface__") or hasattr(value, "__cuda_array_interface__")


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def _shape_args(args: tuple) -> tuple:
    """Accept both t.reshape(2, 3) and t.reshape((2, 3))."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)


# The operators above call the ops, which import Tensor and Function from this module; so the
# ops are imported last, once this module has defined everything they need.
from .ops import elementwise, reduce, shape  # noqa: E402
from .ops.products import matmul as matmul_op  # noqa: E402
