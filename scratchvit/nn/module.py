"""Module, Parameter, ModuleList, Sequential: the containers that hold a model's weights.

A Module registers every Parameter, buffer and sub-Module assigned to it as an attribute, so
`named_parameters()` and `state_dict()` produce PyTorch/timm's dotted names
("blocks.0.attn.qkv.weight") and their checkpoints load unchanged.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

from .. import backend
from ..autograd import Tensor


class Parameter(Tensor):
    """A Tensor that is a weight of a Module (requires grad unless told otherwise)."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad})"


class Module:
    """Base class of every layer and model: subclasses set attributes in __init__ and write forward."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "training", True)

    # ---- registration ---------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() before setting {name!r}")
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._persistent_buffers.discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Tensor, persistent: bool = True) -> None:
        """A constant tensor of the module (moved by .to(); in state_dict when persistent)."""
        value = value if isinstance(value, Tensor) else Tensor(value)
        setattr(self, name, value)
        self._buffers[name] = value
        if persistent:
            self._persistent_buffers.add(name)
        else:
            self._persistent_buffers.discard(name)

    # ---- calling ----------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        """forward(), with the GPU of the first Tensor argument current (nothing to do on the CPU),
        so that the arrays a module makes itself (masks, running statistics) are made there."""
        first = next((value for value in args if isinstance(value, Tensor)), None)
        with backend.on_device(first.device) if first is not None else contextlib.nullcontext():
            output = self.forward(*args, **kwargs)
        for hook in self._forward_hooks:
            hook(self, args, output)
        return output

    def register_forward_hook(self, hook):
        """Call hook(module, inputs, output) after every forward; returns a function that removes it."""
        self._forward_hooks.append(hook)
        return lambda: self._forward_hooks.remove(hook)

    # ---- walking the tree -------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        """(dotted name, module) for this module and every descendant, depth first."""
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            children = [
                (f"{name}.{child_name}" if name else child_name, child) for child_name, child in module._modules.items()
            ]
            stack.extend(reversed(children))

    def modules(self):
        return (module for _, module in self.named_modules())

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter) for every parameter, in registration order."""
        for module_name, module in self.named_modules(prefix):
            for name, parameter in module._parameters.items():
                yield (f"{module_name}.{name}" if module_name else name), parameter

    def parameters(self):
        return (parameter for _, parameter in self.named_parameters())

    def named_buffers(self, prefix: str = "", persistent_only: bool = False):
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._buffers.items():
                if persistent_only and name not in module._persistent_buffers:
                    continue
                yield (f"{module_name}.{name}" if module_name else name), buffer

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- modes, devices, gradients ------------------------------------------------------
    def train(self, mode: bool = True):
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def apply(self, function):
        """Call function(module) on every descendant, children first, then self (as PyTorch)."""
        for module in reversed(list(self.modules())):
            function(module)
        return self

    def to(self, device):
        """Move every parameter and buffer to `device` ("cpu", "cuda", "cuda:N") in place."""
        target = backend.get_device(device)
        for tensor in list(self.parameters()) + [buffer for _, buffer in self.named_buffers()]:
            tensor.data = backend.to_device(tensor.data, target)
            if tensor.grad is not None:
                tensor.grad = backend.to_device(tensor.grad, target)
        return self

    def zero_grad(self) -> None:
        for parameter in self.parameters():
            parameter.grad = None

    # ---- state ----------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """Dotted name -> array, for every parameter and persistent buffer (the arrays themselves)."""
        state = OrderedDict((name, parameter.data) for name, parameter in self.named_parameters())
        state.update((name, buffer.data) for name, buffer in self.named_buffers(persistent_only=True))
        return state

    def load_state_dict(self, state_dict: dict, strict: bool = True):
        """Copy arrays into this module's parameters and buffers, converting to their dtype/device.

        strict: every key must match, with the right shape; otherwise a ValueError names every
        missing, unexpected and wrongly shaped key. Returns (missing keys, unexpected keys).
        """
        targets = dict(self.named_parameters())
        targets.update(self.named_buffers(persistent_only=True))
        missing = [name for name in targets if name not in state_dict]
        unexpected = [name for name in state_dict if name not in targets]
        wrong_shape = [
            f"{name}: checkpoint {tuple(state_dict[name].shape)} vs model {targets[name].shape}"
            for name in targets
            if name in state_dict and tuple(state_dict[name].shape) != targets[name].shape
        ]
        if wrong_shape or (strict and (missing or unexpected)):
            problems = []
            if missing:
                problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
            if unexpected:
                problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
            if wrong_shape:
                problems.append(f"wrong shapes ({len(wrong_shape)}): {'; '.join(wrong_shape)}")
            raise ValueError(f"load_state_dict into {type(self).__name__} failed: " + " | ".join(problems))
        for name, tensor in targets.items():
            if name in state_dict:
                value = backend.to_numpy(state_dict[name]) if tensor.device == backend.CPU else state_dict[name]
                array = backend.to_device(tensor.xp.asarray(value, dtype=tensor.dtype), tensor.device)
                tensor.data = array.copy() if array is value else array
        return missing, unexpected

    # ---- printing -------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_text}")
        if len(lines) == 1:
            return lines[0] + ")"
        return "\n".join(lines) + "\n)"


class ModuleList(Module):
    """A list of modules, registered as "0", "1", ... (timm's blocks.0, blocks.1, ...)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> None:
        setattr(self, str(len(self._modules)), module)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Modules applied one after another."""

    def forward(self, x):
        for module in self:
            x = module(x)
        return x
