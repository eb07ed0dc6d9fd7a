"""The model registry: the table of named model configurations behind `sv.create_model(name, **kwargs)`
and `sv.list_models(pattern)`, as timm's.

Each model file registers its named configurations with `@register_model`; a registered function
takes keyword overrides and returns the model. The model files are imported by the package
(models/__init__.py), so the table is full once `scratchvit.models` is imported. Building a model by
its name, with pretrained weights, is pretrained.create_model.
"""

from __future__ import annotations

import fnmatch

__all__ = ["list_models", "model_entrypoint", "register_alias", "register_model"]

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
    names = set(_MODELS) | set(_ALIASES)
    return sorted(name for name in names if fnmatch.fnmatch(name, pattern))


def model_entrypoint(name: str) -> tuple:
    """(canonical name, the registered function) for a name or alias; ValueError naming the close ones."""
    canonical = _ALIASES.get(name, name)
    if canonical not in _MODELS:
        close = fnmatch.filter(list_models(), f"*{name.split('_')[0]}*") or list_models()
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(close)}")
    return canonical, _MODELS[canonical]
