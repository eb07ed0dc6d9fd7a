"""scratchvit's own threads: large products, attention and chunked kernels cut into one part per core.

NumPy hands each product to BLAS, and OpenBLAS splits it over its own threads, whose idle
workers spin for a while so that the next product starts at once. For one large product that
works well; for a stack of small ones (attention: batch x heads products of 197 x 64 by 64 x 197
in ViT-S, 49 x 32 by 32 x 49 per window in Swin) NumPy calls BLAS once per matrix, and OpenBLAS
hands each small product to its worker and back. Cutting the stack into one part per core
instead, each part on its own thread with OpenBLAS on one, runs the parts side by side: NumPy
releases the GIL in products and ufuncs. PyTorch runs its work the same way, in one pool of
threads of its own. Large 2-D products (the linear layers) are cut by rows or columns.

Setting OpenBLAS to one thread changes every NumPy product in the process, so nothing here does
it on its own: `allow_take_over()` (called by scratchvit.kernels.tune_process(), which the
`scratchvit` command calls) lets scratchvit take over, and `restore_blas_threads()` undoes it.
Even then the take-over waits for the first work of at least MIN_PARALLEL_FLOPS: only then is
the OpenBLAS that NumPy loaded (found through ctypes: NumPy does not expose it) set to one thread
and a pool started of one thread per further core it was using. Our threads sleep when idle and
take a while to wake, so smaller work is never cut, and a small model (the digits demo) keeps
OpenBLAS's spinning workers for all its products. With another BLAS (MKL, Accelerate), one
core, or CuPy, nothing is cut.
"""

from __future__ import annotations

import ctypes
import glob
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# (prefix, suffix) of OpenBLAS's thread-count functions in NumPy's wheels (scipy-openblas, 64-bit
# integers, then 32-bit), in NumPy 1.x's wheels, and in a system OpenBLAS
_SYMBOLS = (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"), ("openblas_", ""))
MIN_PARALLEL_FLOPS = 1 << 27  # 134 MFLOP, about 1 ms on one core: below it a thread's wake-up costs too much


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


def _numpy_blas_name() -> str:
    """The BLAS NumPy was built against, from its build configuration ('' when it does not say)."""
    config = getattr(np.__config__, "CONFIG", {})
    return str(config.get("Build Dependencies", {}).get("blas", {}).get("name", ""))


def find_openblas() -> OpenBLAS | None:
    """The OpenBLAS NumPy uses, or None (another BLAS, such as MKL, or none found)."""
    name = _numpy_blas_name()
    if name and "openblas" not in name.lower():  # an OpenBLAS loaded by another library is not NumPy's
        return None
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
    """OpenBLAS, its thread count, and our pool once scratchvit has taken over (`own`)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.found = False
        self.blas: OpenBLAS | None = None
        self.count = 1  # parts work is cut into; 1: never cut
        self.allowed = False  # allow_take_over() has run
        self.own = False
        self.pool: ThreadPoolExecutor | None = None

    def find(self) -> None:
        with self.lock:
            if not self.found:
                self.blas = find_openblas()
                self.count = 1 if self.blas is None else self.blas.get_num_threads()
                self.found = True

    def take_over(self) -> None:
        with self.lock:
            if not self.own and self.count > 1:
                self.blas.set_num_threads(1)
                self.pool = ThreadPoolExecutor(self.count - 1, thread_name_prefix="scratchvit")
                self.own = True

    def give_back(self) -> None:
        with self.lock:
            if self.own:
                self.blas.set_num_threads(self.count)
                self.pool.shutdown()
                self.pool, self.own = None, False


_threads = _Threads()


def _forget_threads_in_child() -> None:
    """A forked child has none of its parent's threads: it starts afresh."""
    global _threads
    _threads = _Threads()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forget_threads_in_child)


def allow_take_over() -> bool:
    """Let scratchvit take over from NumPy's OpenBLAS at the first work of MIN_PARALLEL_FLOPS or
    more; False (nothing to take over) with another BLAS or one core."""
    _threads.find()
    _threads.allowed = _threads.count > 1
    return _threads.allowed


def restore_blas_threads() -> None:
    """Give OpenBLAS back the thread count it had, stop our pool, and take over no more."""
    _threads.find()
    _threads.give_back()
    _threads.allowed = False


def parts_for(work: float, minimum: float | None = None) -> int:
    """How many parts to cut `work` into (floating-point operations, or the elements of an
    elementwise kernel): 1 until allow_take_over() has run or below `minimum` (MIN_PARALLEL_FLOPS
    unless given); else one per core, taking over from OpenBLAS if not yet."""
    if not _threads.allowed or work < (MIN_PARALLEL_FLOPS if minimum is None else minimum):
        return 1
    if not _threads.own:
        _threads.take_over()
    return _threads.count


_inside = threading.local()  # .part: this thread is running a part already


def _run_part(function, args):
    _inside.part = True
    try:
        return function(*args)
    finally:
        _inside.part = False


def run_parts(function, arguments: list) -> list:
    """[function(*args) for args in arguments], the first on this thread, the others on the pool
    (all on this thread when called from inside a part: the pool's threads are busy then)."""
    if getattr(_inside, "part", False) or _threads.pool is None or len(arguments) < 2:
        return [function(*args) for args in arguments]
    others = [_threads.pool.submit(_run_part, function, args) for args in arguments[1:]]
    first = _run_part(function, arguments[0])
    return [first] + [other.result() for other in others]


def bounds(length: int, parts: int) -> list:
    """(start, stop) of `parts` near-equal consecutive pieces of range(length)."""
    edges = np.linspace(0, length, parts + 1).astype(int).tolist()
    return list(zip(edges[:-1], edges[1:], strict=True))


def matmul(a, b):
    """a @ b (NumPy's rules, both at least 2-D), cut into parts_for(its flops) parts.

    A stack (leading dims, broadcast) is cut along its longest leading axis. A 2-D product (or a
    stack shorter than the parts) is cut along the longer of a's rows and b's columns, each part
    one np.matmul into its slice of the output; a 2-D product whose inner
    dimension is more than twice both others (a weight gradient, g^T x, summed over all tokens)
    along that inner dimension instead: each part is a partial product, and the parts are summed.
    """
    if not isinstance(a, np.ndarray):  # CuPy: the GPU's own BLAS
        return a @ b
    leading = () if a.ndim == b.ndim == 2 else np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    rows, inner, columns = a.shape[-2], a.shape[-1], b.shape[-1]
    parts = parts_for(2 * math.prod(leading) * rows * inner * columns)
    if parts < 2:
        return a @ b
    if not leading and inner > 2 * max(rows, columns):
        partial = run_parts(lambda start, stop: a[:, start:stop] @ b[start:stop], bounds(inner, parts))
        for other in partial[1:]:
            partial[0] += other
        return partial[0]
    a = np.broadcast_to(a, leading + a.shape[-2:])
    b = np.broadcast_to(b, leading + b.shape[-2:])
    out = np.empty(leading + (rows, columns), np.result_type(a, b))
    sizes = leading + (rows, columns)
    axis = int(np.argmax(leading)) if leading else (0 if rows >= columns else 1)
    if leading and leading[axis] < parts:  # a short stack of large matrices: cut their rows or columns
        axis = len(leading) + (0 if rows >= columns else 1)
    pieces = []
    for start, stop in bounds(sizes[axis], min(parts, sizes[axis])):
        cut = (slice(None),) * axis + (slice(start, stop),)
        if axis < len(leading):  # a stack: those matrices of a, b and out
            pieces.append((a[cut], b[cut], out[cut]))
        elif axis == len(leading):  # those rows of a, all of b
            pieces.append((a[cut], b, out[cut]))
        else:  # all of a, those columns of b
            pieces.append((a, b[cut], out[cut]))
    run_parts(lambda x, y, z: np.matmul(x, y, out=z), pieces)
    return out
