"""Matrix products on scratchvit's own threads, each running BLAS on one thread.

NumPy hands each product to BLAS, and OpenBLAS splits it over its own threads. For one large
product that works well; for a stack of small ones (attention: batch x heads products of
197 x 64 by 64 x 197 in ViT-S, 49 x 32 by 32 x 49 per window in Swin) NumPy calls BLAS once per
matrix, and OpenBLAS hands each small product to its worker and back: on 2 cores, 48 products of
197 x 64 x 197 took 2.6-5.7 ms on OpenBLAS's two threads against 3.2 ms on one. With OpenBLAS on
one thread and the stack cut in two, one half on a thread of ours, they took 1.6 ms: NumPy
releases the GIL for the whole product, so the halves run side by side. Large 2-D products (the
linear layers) cut the same way, by rows or columns, run within 2% of OpenBLAS's own split.
PyTorch runs its products the same way, in one pool of threads of its own.

So the first product `matmul` sees sets the OpenBLAS that NumPy loaded (found through ctypes: NumPy
does not expose its thread count) to one thread, and starts a pool of one thread per further
core OpenBLAS was using. Other NumPy products in the process then run on one thread too (call
`restore_blas_threads()` to give them back, which also ends the splitting here). With another
BLAS (MKL, Accelerate), one core, or CuPy arrays, `matmul` is plain `a @ b`.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# (prefix, suffix) of OpenBLAS's thread-count functions in NumPy's wheels (scipy-openblas, 64-bit
# integers, then 32-bit), in NumPy 1.x's wheels, and in a system OpenBLAS
_SYMBOLS = (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"), ("openblas_", ""))
MIN_SPLIT_FLOPS = 1 << 23  # below about 8 MFLOP (some 50 us) a hand-off to a thread costs more than it saves


class OpenBLAS:
    """get_num_threads / set_num_threads of one loaded OpenBLAS library."""

    def __init__(self, library: ctypes.CDLL, prefix: str, suffix: str):
        self._get = getattr(library, f"{prefix}get_num_threads{suffix}")
        self._set = getattr(library, f"{prefix}set_num_threads{suffix}")
        self._get.restype, self._set.argtypes = ctypes.c_int, [ctypes.c_int]

    def get_num_threads(self) -> int:
        return int(self._get())

    def set_num_threads(self, count: int) -> None:
        self._set(count)


def _openblas_paths() -> list:
    """The OpenBLAS libraries NumPy's wheels bundle (numpy.libs, .dylibs), then those in this
    process's memory map (Linux), which covers a NumPy linked against a system OpenBLAS."""
    numpy_dir = os.path.dirname(np.__file__)
    paths = []
    for pattern in ("../numpy.libs/*openblas*", ".dylibs/*openblas*"):
        paths += sorted(glob.glob(os.path.join(numpy_dir, pattern)))
    try:
        with open("/proc/self/maps") as maps:
            paths += sorted({line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1]})
    except OSError:
        pass
    return paths


def find_openblas() -> OpenBLAS | None:
    """The OpenBLAS NumPy uses, or None (another BLAS, or none found)."""
    for path in _openblas_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in _SYMBOLS:
            try:
                return OpenBLAS(library, prefix, suffix)
            except AttributeError:
                continue
    return None


class _Threads:
    """The state set up by the first product: OpenBLAS, its original thread count, our pool."""

    def __init__(self):
        self.lock = threading.Lock()
        self.started = False
        self.blas: OpenBLAS | None = None
        self.count = 1  # threads a product is cut for; 1: plain a @ b
        self.pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        with self.lock:
            if self.started:
                return
            self.blas = find_openblas()
            self.count = 1 if self.blas is None else self.blas.get_num_threads()
            if self.count > 1:
                self.blas.set_num_threads(1)
                self.pool = ThreadPoolExecutor(self.count - 1, thread_name_prefix="scratchvit-gemm")
            self.started = True


_threads = _Threads()


def _forget_threads_in_child() -> None:
    """A forked child has none of its parent's threads: it starts its own pool on its first product."""
    global _threads
    _threads = _Threads()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forget_threads_in_child)


def restore_blas_threads() -> None:
    """Give OpenBLAS back its thread count, and make `matmul` plain `a @ b` from now on."""
    with _threads.lock:
        if _threads.blas is not None and _threads.count > 1:
            _threads.blas.set_num_threads(_threads.count)
        _threads.started, _threads.count = True, 1


def matmul(a, b, out=None):
    """a @ b (NumPy's rules, both at least 2-D), cut into one part per thread when it is large.

    A stack (leading dims, broadcast) is cut along its longest leading axis; a 2-D product along
    the longer of a's rows and b's columns. Every part is one np.matmul into its slice of `out`
    (a new array unless given), the first on the calling thread.
    """
    if not isinstance(a, np.ndarray):  # CuPy: the GPU's own BLAS
        return a @ b
    if not _threads.started:
        _threads.start()
    count = _threads.count
    leading = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    rows, inner, columns = a.shape[-2], a.shape[-1], b.shape[-1]
    if count < 2 or 2 * int(np.prod(leading)) * rows * inner * columns < MIN_SPLIT_FLOPS:
        return np.matmul(a, b, out=out)
    a = np.broadcast_to(a, leading + a.shape[-2:])
    b = np.broadcast_to(b, leading + b.shape[-2:])
    if out is None:
        out = np.empty(leading + (rows, columns), np.result_type(a, b))
    sizes = leading + (rows, columns)
    axis = int(np.argmax(leading)) if leading else (0 if rows >= columns else 1)
    if leading and leading[axis] < count:  # a short stack of large matrices: cut their rows or columns
        axis = len(leading) + (0 if rows >= columns else 1)
    bounds = np.linspace(0, sizes[axis], min(count, sizes[axis]) + 1).astype(int).tolist()
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        cut = (slice(None),) * axis + (slice(start, stop),)
        if axis < len(leading):  # a stack: those matrices of a, b and out
            parts.append((a[cut], b[cut], out[cut]))
        elif axis == len(leading):  # those rows of a, all of b
            parts.append((a[cut], b, out[cut]))
        else:  # all of a, those columns of b
            parts.append((a, b[cut], out[cut]))
    others = [_threads.pool.submit(np.matmul, x, y, out=z) for x, y, z in parts[1:]]
    np.matmul(*parts[0][:2], out=parts[0][2])
    for other in others:
        other.result()
    return out
