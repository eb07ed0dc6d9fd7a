"""Kernels for NumPy arrays; importing this package registers them."""

from . import attention, blas, gelu, layer_norm, residual_add, softmax

__all__ = ["attention", "blas", "gelu", "layer_norm", "residual_add", "softmax"]
