"""Ops that move values without changing them: reshape, permute, transpose, expand, getitem,
take_along_axis, concatenate, stack, split, pad, roll, and the move between devices.

Each output entry is a copy of one input entry (y_j = x_s(j) for some source index s(j)), so
dy_j/dx_i = 1 where i = s(j) and 0 elsewhere, and dx_i = sum of g_j over the j with s(j) = i:
each backward puts the gradient back where the value came from. Where every entry is used once
(reshape, permute, roll, ...) that is the inverse move; where an entry is used several times
(expand, an index that repeats) its copies' gradients add up.
"""

from __future__ import annotations

import itertools

from ..autograd import Function, Tensor, unbroadcast
from ..backend import device_of, xp_of
from ..backend import to_device as move_array


def inverse_permutation(axes: tuple) -> tuple:
    """The axes that undo transpose(axes): if output axis i is input axis axes[i], input axis
    axes[i] is output axis i."""
    # BEGIN SOLUTION 2.1 inverse_permutation
    inverse = [0] * len(axes)
    for position, axis in enumerate(axes):
        inverse[axis] = position
    return tuple(inverse)
    # END SOLUTION 2.1


class Reshape(Function):
    """y = x with a new shape of the same size: (s1, ..., sk) -> shape. The entries keep their
    row-major order.

    Backward: dx = g reshaped to x's shape.
    """

    def forward(self, x, shape):
        self.input_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        # BEGIN SOLUTION 2.1 Reshape.backward
        # dx = g reshaped back
        return grad.reshape(self.input_shape)
        # END SOLUTION 2.1


class Permute(Function):
    """y = x with its axes reordered: y.shape[i] = x.shape[axes[i]]. Entry y[j] is x[j'] with
    the index permuted.

    Backward: dx = g with the axes put back (the inverse permutation).
    """

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, grad):
        # BEGIN SOLUTION 2.1 Permute.backward
        # dx = g with the inverse permutation
        return grad.transpose(inverse_permutation(self.axes))
        # END SOLUTION 2.1


class Expand(Function):
    """y = x broadcast to `shape` (NumPy's rules): every entry of x is copied along the new and
    the size-1 axes.

    Backward: dx = the sum of g over those copies (unbroadcast).
    """

    def forward(self, x, shape):
        self.input_shape = x.shape
        return xp_of(x).broadcast_to(x, shape)

    def backward(self, grad):
        # BEGIN SOLUTION 2.1 Expand.backward
        # dx = g summed over the broadcast axes
        return unbroadcast(grad, self.input_shape)
        # END SOLUTION 2.1


class GetItem(Function):
    """y = x[index]: slices, integers, None, Ellipsis and integer arrays (a boolean mask arrives
    as the integer arrays of its True places).

    Backward: dx = zeros of x's shape with g scattered to the indexed places; an entry that an
    integer-array index picks k times gets the sum of its k gradients, which needs `add.at`
    (plain `dx[index] += g` would keep only one of them).
    """

    def forward(self, x, index):
        self.input_shape, self.index = x.shape, index
        self.has_array_index = any(hasattr(i, "shape") or isinstance(i, list) for i in index)
        return x[index]

    def backward(self, grad):
        # BEGIN SOLUTION 2.2 GetItem.backward
        # dx = g scattered back; an element picked twice by an integer-array index gets both
        xp = xp_of(grad)
        grad_x = xp.zeros(self.input_shape, dtype=grad.dtype)
        if self.has_array_index:
            xp.add.at(grad_x, self.index, grad)
        else:
            grad_x[self.index] = grad
        return grad_x
        # END SOLUTION 2.2


class TakeAlongAxis(Function):
    """y[..., j, ...] = x[..., indices[..., j, ...], ...] along `axis` (MAE's gather of the kept
    patches, He et al. 2022, Sec. 3). x: (..., n, ...), indices: (..., m, ...) -> (..., m, ...).

    Backward: dx = zeros, then g[..., j, ...] added at x's position indices[..., j, ...]; an index
    that repeats accumulates (add.at).
    """

    def forward(self, x, indices, axis):
        self.input_shape, self.indices, self.axis = x.shape, indices, axis
        return xp_of(x).take_along_axis(x, indices, axis=axis)

    def backward(self, grad):
        # BEGIN SOLUTION 2.2 TakeAlongAxis.backward
        # dx[..., indices[..., j, ...], ...] += g[..., j, ...]
        xp = xp_of(grad)
        grad_x = xp.zeros(self.input_shape, dtype=grad.dtype)
        # the grid spans the output (g's shape): indices and x may broadcast against each other
        # off the axis, and a size-1 axis of x that was broadcast takes every position's gradient
        ranges = [
            xp.arange(n) if m != 1 else xp.zeros(n, dtype=xp.intp)
            for n, m in zip(grad.shape, self.input_shape, strict=True)
        ]
        grid = list(xp.ix_(*ranges))
        grid[self.axis] = self.indices
        xp.add.at(grad_x, tuple(grid), grad)
        return grad_x
        # END SOLUTION 2.2


class Concatenate(Function):
    """y = the inputs joined along an existing `axis`: (..., n_1, ...), ..., (..., n_k, ...) ->
    (..., n_1 + ... + n_k, ...).

    Backward: input i fills one slice of y => its gradient is that slice of g.
    """

    def forward(self, *arrays, axis):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return xp_of(arrays[0]).concatenate(arrays, axis=axis)

    def backward(self, grad):
        # BEGIN SOLUTION 2.3 Concatenate.backward
        # each input gets its own slice of g along axis
        boundaries = list(itertools.accumulate(self.sizes[:-1]))  # where each input's slice ends
        return tuple(xp_of(grad).split(grad, boundaries, axis=self.axis))
        # END SOLUTION 2.3


class Stack(Function):
    """y = k inputs of one shape S joined along a new `axis`: k x S -> S with k inserted at axis.

    Backward: input i is y's entry i along that axis => its gradient is g's entry i there.
    """

    def forward(self, *arrays, axis):
        self.axis = axis
        return xp_of(arrays[0]).stack(arrays, axis=axis)

    def backward(self, grad):
        # BEGIN SOLUTION 2.3 Stack.backward
        # input i gets g[..., i, ...] along the new axis
        xp = xp_of(grad)
        return tuple(xp.take(grad, i, axis=self.axis) for i in range(grad.shape[self.axis]))
        # END SOLUTION 2.3


class Pad(Function):
    """y = x with `value` added around it: (..., n, ...) -> (..., before + n + after, ...) per
    axis.

    Backward: the padding is constant, so dx = g without the padding (its centre).
    """

    def forward(self, x, pad_width, value):
        self.pad_width = pad_width
        return xp_of(x).pad(x, pad_width, constant_values=value)

    def backward(self, grad):
        # BEGIN SOLUTION 2.3 Pad.backward
        # dx = the centre of g, without the padding
        return grad[tuple(slice(before, grad.shape[i] - after) for i, (before, after) in enumerate(self.pad_width))]
        # END SOLUTION 2.3


class Roll(Function):
    """y[(i + s) % n] = x[i] along each of `axes`, x: any shape -> the same (Swin's cyclic shift,
    Liu et al. 2021, Sec. 3.2).

    Backward: the gradient of x[i] is g[(i + s) % n] => dx = g rolled by -s.
    """

    def forward(self, x, shifts, axes):
        self.shifts, self.axes = shifts, axes
        return xp_of(x).roll(x, shifts, axis=axes)

    def backward(self, grad):
        # BEGIN SOLUTION 2.4 Roll.backward
        # dx = g rolled the other way
        return xp_of(grad).roll(grad, tuple(-s for s in self.shifts), axis=self.axes)
        # END SOLUTION 2.4


class ToDevice(Function):
    """y = x copied to `device` (CPU or a GPU), same shape and dtype.

    Backward: y = x => dx = g, moved back to the device x lives on.
    """

    def forward(self, x, device):
        self.source = device_of(x)
        return move_array(x, device)

    def backward(self, grad):
        # BEGIN SOLUTION 2.4 ToDevice.backward
        # dx = g, moved back to where x lives
        return move_array(grad, self.source)
        # END SOLUTION 2.4


def check_axis(name: str, axis: int, ndim: int) -> int:
    """axis as a non-negative index; ValueError naming the argument when out of range."""
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(f"{name} {axis!r} is out of range for a tensor with {ndim} dimensions")
    return axis % ndim


def reshape(x, shape) -> Tensor:
    """x with a new shape of the same size (one entry may be -1)."""
    shape = tuple(shape)
    return Reshape.apply(x, shape=shape)


def permute(x, axes) -> Tensor:
    """Reorder the axes: out.shape[i] = x.shape[axes[i]]."""
    axes = tuple(check_axis("axes entry", a, x.ndim) for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"axes {axes} must be a permutation of 0..{x.ndim - 1}")
    return Permute.apply(x, axes=axes)


def transpose(x, axis0: int = -2, axis1: int = -1) -> Tensor:
    """Swap axis0 and axis1 (PyTorch's transpose)."""
    axes = list(range(x.ndim))
    a, b = check_axis("axis0", axis0, x.ndim), check_axis("axis1", axis1, x.ndim)
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(x, axes=tuple(axes))


def expand(x, shape) -> Tensor:
    """Broadcast x to `shape` (a view; the gradient is summed back)."""
    return Expand.apply(x, shape=tuple(shape))


def getitem(x, index) -> Tensor:
    """x[index]: slices, integers, None, Ellipsis, and integer or boolean arrays."""
    if not isinstance(index, tuple):
        index = (index,)
    plain_index = []
    for item in index:
        item = item.data if isinstance(item, Tensor) else item
        if hasattr(item, "dtype") and item.dtype == bool:
            plain_index.extend(item.nonzero())  # a boolean mask is the integer arrays of its True places
        else:
            plain_index.append(item)
    return GetItem.apply(x, index=tuple(plain_index))


def take_along_axis(x, indices, axis: int) -> Tensor:
    """out[..., j, ...] = x[..., indices[..., j, ...], ...] along `axis` (MAE's gather)."""
    if isinstance(indices, Tensor):
        indices = indices.data
    axis = check_axis("axis", axis, x.ndim)
    if indices.ndim != x.ndim:
        raise ValueError(f"indices must have {x.ndim} dimensions like x, got shape {indices.shape}")
    return TakeAlongAxis.apply(x, indices=indices, axis=axis)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if len(tensors) == 0:
        raise ValueError("concatenate needs at least one tensor")
    return Concatenate.apply(*tensors, axis=check_axis("axis", axis, tensors[0].ndim))


def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    if len(tensors) == 0:
        raise ValueError("stack needs at least one tensor")
    return Stack.apply(*tensors, axis=check_axis("axis", axis, tensors[0].ndim + 1))


def split(x, split_size_or_sections, axis: int = 0) -> list:
    """Cut x along axis: into pieces of size n (an int, as torch.split) or of the given sizes."""
    axis = check_axis("axis", axis, x.ndim)
    length = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split_size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, length - start) for start in range(0, length, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != length:
            raise ValueError(f"split sizes {sizes} add up to {sum(sizes)}, but axis {axis} has size {length}")
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(getitem(x, index))
        start += size
    return pieces


def pad(x, pad_width, value: float = 0.0) -> Tensor:
    """Pad with a constant; pad_width is ((before, after), ...) per axis, as numpy.pad."""
    pad_width = tuple((int(b), int(a)) for b, a in pad_width)
    if len(pad_width) != x.ndim:
        raise ValueError(f"pad_width needs one (before, after) pair per axis ({x.ndim}), got {len(pad_width)}")
    return Pad.apply(x, pad_width=pad_width, value=value)


def roll(x, shifts, axes) -> Tensor:
    """Cyclic shift: out[(i + s) % n] = x[i] along each axis (Swin's shifted windows, Sec. 3.2)."""
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    if len(shifts) != len(axes):
        raise ValueError(f"roll needs one shift per axis: got shifts {shifts} and axes {axes}")
    axes = tuple(check_axis("axes entry", a, x.ndim) for a in axes)
    return Roll.apply(x, shifts=shifts, axes=axes)


def to_device(x, device) -> Tensor:
    """x moved to `device` (a backend.Device); the gradient moves back."""
    return ToDevice.apply(x, device=device)
