"""The GPU half of the fast tier: CuPy kernels that fuse an op's elementwise work into one launch.

On a GPU every elementwise operation is a kernel launch that reads and writes whole arrays, so a
textbook op written as ten array expressions costs ten launches and as many full-size temporaries.
Each kernel here is written with `cupy.fuse`, which compiles a Python function of elementwise
operations, optionally ending in one reduction, into a single kernel. The Python body is also
plain array code: under the CuPy stand-in of the tests it runs one operation at a time on NumPy,
so the tests hold every kernel equal to its textbook op without a GPU.

CuPy is imported the first time a kernel runs, never at import.
"""

from . import adamw, cross_entropy, gelu, layer_norm, softmax

__all__ = ["adamw", "cross_entropy", "gelu", "layer_norm", "softmax"]
