"""scratchvit: Vision Transformers (ViT, MAE, Swin) from scratch on NumPy or CuPy.

>>> import scratchvit as sv
>>> from scratchvit import ops as F
"""

from . import kernels, nn, ops
from .autograd import Function, Tensor, is_grad_enabled, no_grad, unbroadcast
from .backend import cuda_is_available, default_device, get_device, manual_seed, set_default_device
from .check import GradcheckError, gradcheck
from .io import CheckpointError, save_checkpoint
from .models import create_model, list_models, load_checkpoint
from .tensors import ones, randn, tensor, zeros
from .train import distributed

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Function",
    "GradcheckError",
    "Tensor",
    "create_model",
    "cuda_is_available",
    "default_device",
    "distributed",
    "get_device",
    "gradcheck",
    "is_grad_enabled",
    "kernels",
    "list_models",
    "load_checkpoint",
    "manual_seed",
    "nn",
    "no_grad",
    "ones",
    "ops",
    "randn",
    "save_checkpoint",
    "set_default_device",
    "tensor",
    "unbroadcast",
    "zeros",
]
