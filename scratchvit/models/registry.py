"""The model registry: `sv.create_model(name, **kwargs)` and `sv.list_models(pattern)`, as timm's.

Each model file registers its named configurations with `@register_model`; a registered function
takes keyword overrides and returns the model. `pretrained=PATH` loads weights from a file.
"""

from __future__ import annotations

import fnmatch

_MODELS: dict = {}
_ALIASES: dict = {}


def register_model(function):
    """Decorator: make `function(**kwargs) -> Module` creatable by its name."""
    if function.__name__ in _MODELS:
        raise ValueError(f"model {function.__name__!r} is registered twice")
    _MODELS[function.__name__] = function
    return function


def register_alias(alias: str, name: str) -> None:
    """Let `alias` stand for the registered model `name` (e.g. mae_vit_base_patch16)."""
    _ALIASES[alias] = name


def list_models(pattern: str = "*") -> list:
    """Sorted names (aliases included) matching a shell-style pattern, e.g. "swin*"."""
    _ensure_registered()
    names = set(_MODELS) | set(_ALIASES)
    return sorted(name for name in names if fnmatch.fnmatch(name, pattern))


def create_model(name: str, pretrained=None, **kwargs):
    """Build a registered model; keyword arguments override its configuration (timm's names).

    pretrained: a path to weights (our checkpoints, safetensors, torch .pth, big_vision .npz).
    """
    _ensure_registered()
    canonical = _ALIASES.get(name, name)
    if canonical not in _MODELS:
        close = fnmatch.filter(list_models(), f"*{name.split('_')[0]}*") or list_models()
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(close)}")
    model = _MODELS[canonical](**kwargs)
    model.model_name, model.model_kwargs = canonical, dict(kwargs)
    if pretrained:
        from ..io import load_pretrained

        load_pretrained(model, pretrained)
    return model


def _ensure_registered() -> None:
    """Importing the model files runs their @register_model decorators."""
    from . import mae, swin, vit  # noqa: F401
