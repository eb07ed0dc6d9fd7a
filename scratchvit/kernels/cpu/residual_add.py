"""a + b for two same-shaped arrays, cut over every core (textbook op: ops.elementwise.Add).

The residual adds of a transformer block (x + attn(x), x + mlp(x)) add two arrays of the same
shape, (B, N, C): one pass over three arrays, more than one core's share of the memory
bandwidth. Once scratchvit may take over from OpenBLAS and the arrays have at least
min_parallel_elements() elements, the flat arrays are cut into one range per core (threads.py),
each added into its slice of the output on its own thread. Anything else (broadcasting, a
non-contiguous operand, a small array) runs the textbook's a + b. The backward is the
textbook's: for same shapes, unbroadcast hands back the incoming gradient itself to both
inputs, without a copy.
"""

from __future__ import annotations

import numpy as np

from ...backend import FLOAT_DTYPES
from ...ops.elementwise import Add
from ..registry import register_kernel
from . import chunks, threads


def min_parallel_elements() -> int:
    """The fewest elements worth cutting: twice a chunked kernel's minimum, since a sum does one
    addition per element: below that a thread's wake-up costs more than it saves."""
    return 2 * chunks.MIN_PARALLEL_ELEMENTS


@register_kernel(Add, "numpy", FLOAT_DTYPES)
class ResidualAdd(Add):
    """a + b of two same-shaped contiguous arrays cut into one flat range per core."""

    def forward(self, a, b):
        # a, b: same shape (e.g. (B, N, C)) -> a + b; broadcasting: the textbook
        parts = threads.parts_for(a.size, minimum=min_parallel_elements())
        if parts < 2 or a.shape != b.shape or not (a.flags.c_contiguous and b.flags.c_contiguous):
            return super().forward(a, b)
        self.a_shape, self.b_shape = a.shape, b.shape
        out = np.empty(a.shape, np.result_type(a, b))
        flat_a, flat_b, flat_out = a.reshape(-1), b.reshape(-1), out.reshape(-1)

        def part(start: int, stop: int) -> None:
            np.add(flat_a[start:stop], flat_b[start:stop], out=flat_out[start:stop])

        threads.run_parts(part, threads.bounds(a.size, min(parts, a.size)))
        return out
