"""Layers and containers with PyTorch/timm names: `from scratchvit import nn`."""

from . import init
from .batchnorm import BatchNorm1d
from .layers import (
    GELU,
    Attention,
    Block,
    Dropout,
    DropPath,
    Identity,
    LayerNorm,
    LayerScale,
    Linear,
    Mlp,
    PatchEmbed,
    PatchProjection,
)
from .module import Module, ModuleList, Parameter, Sequential

__all__ = [
    "GELU",
    "Attention",
    "BatchNorm1d",
    "Block",
    "DropPath",
    "Dropout",
    "Identity",
    "LayerNorm",
    "LayerScale",
    "Linear",
    "Mlp",
    "Module",
    "ModuleList",
    "Parameter",
    "PatchEmbed",
    "PatchProjection",
    "Sequential",
    "init",
]
