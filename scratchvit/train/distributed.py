"""Data-parallel training over MPI (mpi4py), and over NCCL (cupy.cuda.nccl) when the arrays are on GPUs.

Data parallelism in four moves (Goyal et al. 2017, "Accurate, Large Minibatch SGD"; Li et al.
2020, "PyTorch Distributed"), each process of the job (a *rank*) running the same training loop:

1. every rank builds the model; `broadcast_parameters` copies rank 0's weights into the others,
   so all start equal;
2. each rank reads its own part of every batch (`scratchvit.data.DistributedSampler`);
3. after backward, `all_reduce_grads` replaces every rank's gradients by their average over all
   the samples of the batch, so every rank holds the same gradient;
4. every rank takes the same optimizer step, and the weights stay equal without being sent again.

`mpirun -n 4 scratchvit train ...` starts four ranks; `init()` joins them into one job. The
same from Python:

>>> import scratchvit as sv
>>> sv.distributed.init()            # under mpirun: joins the job; otherwise: one process
>>> sv.distributed.world_size(), sv.distributed.rank()
>>> loss.backward(); sv.distributed.all_reduce_grads(model); optimizer.step()

Without an MPI launcher nothing here imports mpi4py: world_size() is 1, rank() is 0, and every
function returns at once, so a plain run is exactly what it was. NumPy arrays travel over MPI;
CuPy arrays over NCCL, whose communicator is made on first use (its id sent over MPI).

A rank that raises ends the whole job (`abort`, MPI_Abort): the others may be waiting for it in a
collective call, and would wait forever.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

import numpy as np

from .. import backend

# Set by an MPI launcher in every process it starts: Open MPI, MPICH and Intel MPI (hydra), PMIx
# (Open MPI 5, Slurm's srun). Looking at them first spares a plain run the import of mpi4py.
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")
BUCKET_ELEMENTS = 1 << 22  # at most 4 Mi elements (16 MiB of float32) per all-reduce: bounds the extra memory
_MPI_HINT = "pip install 'scratchvit[mpi]' (mpi4py and the MPICH wheel), or mpi4py built against your MPI"

_MPI = None  # the mpi4py.MPI module, once init() has joined a job
_comm = None  # MPI.COMM_WORLD
_local_rank = 0  # this rank's place among the ranks on its host: which GPU it takes
_nccl_communicators: dict = {}  # CUDA device index -> NcclCommunicator


def launched_by_mpi() -> bool:
    """True when an MPI launcher (mpirun, mpiexec, srun) started this process."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def init() -> int:
    """Join the MPI job this process was started in, and return the number of ranks.

    Without an MPI launcher: do nothing (mpi4py is not imported) and return 1. Calling it again
    does nothing more. With more than one rank, an exception nobody catches ends the whole job
    (see `abort`) instead of leaving the other ranks waiting.
    """
    global _MPI, _comm, _local_rank
    if _comm is not None or not launched_by_mpi():
        return world_size()
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"started by an MPI launcher, but mpi4py is not installed: {_MPI_HINT}") from error
    _MPI, _comm = MPI, MPI.COMM_WORLD
    _local_rank = _comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
    if _comm.Get_size() > 1:
        sys.excepthook = _abort_on_uncaught
    return world_size()


def world_size() -> int:
    """How many ranks train together (1 without MPI)."""
    return 1 if _comm is None else _comm.Get_size()


def rank() -> int:
    """This process's rank, 0 to world_size() - 1 (0 without MPI)."""
    return 0 if _comm is None else _comm.Get_rank()


def is_main() -> bool:
    """True on rank 0, the one that prints progress and writes metrics and checkpoints."""
    return rank() == 0


def local_device(device=None):
    """The device this rank computes on: `device` (default: $SCRATCHVIT_DEVICE), except that a bare
    "cuda" in a job of several ranks becomes "cuda:<local rank>", so the ranks on one host take
    one GPU each. A device with an index, or "cpu", is kept."""
    name = device if device is not None else os.environ.get("SCRATCHVIT_DEVICE")
    if world_size() > 1 and name == "cuda":
        return f"cuda:{_local_rank}"
    return device


def abort(message: str, exit_code: int = 1) -> NoReturn:
    """Print `message` on stderr, naming this rank, and end every rank of the job with exit_code.

    MPI_Abort, because the other ranks may be blocked in a collective waiting for this one. In
    one process: print and raise SystemExit(exit_code).
    """
    print(f"[rank {rank()} of {world_size()}] {message}", file=sys.stderr, flush=True)
    if world_size() > 1:
        _comm.Abort(exit_code)
    raise SystemExit(exit_code)


def _abort_on_uncaught(exc_type, exc, tb) -> None:
    """sys.excepthook under MPI: the traceback, naming the rank, then the whole job ends."""
    abort("".join(traceback.format_exception(exc_type, exc, tb)).rstrip(), exit_code=1)


# ---- collectives --------------------------------------------------------------------------------
def all_reduce_sum(values) -> np.ndarray:
    """The element-wise sum over ranks of `values` (numbers or a NumPy array), as float64.

    For counts and sums of metrics: every rank gets the same result.
    """
    total = np.array(values, dtype=np.float64)
    if world_size() > 1:
        _comm.Allreduce(_MPI.IN_PLACE, total, op=_MPI.SUM)
    return total


def gather_to_main(value) -> list | None:
    """Every rank's `value` (any picklable object, e.g. its random generators' state), as a list in
    rank order on rank 0 and None on the others; [value] in one process."""
    if world_size() == 1:
        return [value]
    return _comm.gather(value, root=0)


def broadcast_parameters(model, root: int = 0) -> None:
    """Copy rank `root`'s parameters and buffers into every rank's model, in place."""
    if world_size() == 1:
        return
    tensors = list(model.parameters()) + [buffer for _, buffer in model.named_buffers()]
    for bucket in _buckets([tensor.data for tensor in tensors]):
        flat = _concatenate([tensors[index].data for index in bucket])
        _broadcast_in_place(flat, root)
        for index, part in zip(bucket, _split(flat, [tensors[index].data for index in bucket]), strict=True):
            tensors[index].data[...] = part


def all_reduce_grads(parameters, weight: float = 1.0) -> None:
    """Average the gradients over ranks, in place: grad = sum(weight * grad) / sum(weight).

    parameters: a Module or an iterable of Parameters, the same on every rank (those that do not
      require grad are left out). weight: how much this rank's gradients count; with each rank's
      loss a mean over its own samples, weight = its number of samples gives the gradient of the
      whole batch even when the ranks' parts differ in size, and 0 for a rank with none.

    The gradients travel in flat contiguous buckets, one in-place all-reduce per bucket, never one
    call per parameter. A parameter without a gradient on a rank counts as zero there, and stays
    without one only when it has none on every rank (as one process on the whole batch would).
    """
    if not weight >= 0:
        raise ValueError(f"weight must be >= 0 (the rank's number of samples), got {weight!r}")
    if world_size() == 1:
        return
    parameters = [
        p for p in (parameters.parameters() if hasattr(parameters, "parameters") else parameters) if p.requires_grad
    ]
    for bucket in _buckets([parameter.data for parameter in parameters]):
        group = [parameters[index] for index in bucket]
        xp = backend.xp_of(group[0].data)
        count = sum(parameter.size for parameter in group)
        # The bucket: weight * grad of each parameter, then one has-a-gradient flag per parameter,
        # then the weight itself, so that one all-reduce sums all three.
        flat = xp.zeros(count + len(group) + 1, dtype=group[0].data.dtype)
        offset = 0
        for parameter in group:
            if parameter.grad is not None:
                xp.multiply(parameter.grad.reshape(-1), weight, out=flat[offset : offset + parameter.size])
            offset += parameter.size
        flat[count:-1] = xp.asarray([parameter.grad is not None for parameter in group], dtype=flat.dtype)
        flat[-1] = weight
        _all_reduce_sum_in_place(flat)
        flat[:count] /= flat[-1]
        has_grad = backend.to_numpy(flat[count:-1]) > 0  # one copy to the host per bucket, not per parameter
        for parameter, part, present in zip(group, _split(flat, [p.data for p in group]), has_grad, strict=True):
            parameter.grad = part if present else None


def _buckets(arrays: list):
    """Lists of indices of consecutive arrays of one dtype, at most BUCKET_ELEMENTS elements in
    all (an array larger than that is a bucket of its own)."""
    bucket, size = [], 0
    for index, array in enumerate(arrays):
        if bucket and (array.dtype != arrays[bucket[0]].dtype or size + array.size > BUCKET_ELEMENTS):
            yield bucket
            bucket, size = [], 0
        bucket.append(index)
        size += array.size
    if bucket:
        yield bucket


def _concatenate(arrays: list):
    """One new contiguous 1-D array holding `arrays` one after another."""
    return backend.xp_of(arrays[0]).concatenate([array.reshape(-1) for array in arrays])


def _split(flat, like: list) -> list:
    """Views of the start of `flat` shaped as each array of `like`, one after another."""
    views, offset = [], 0
    for array in like:
        views.append(flat[offset : offset + array.size].reshape(array.shape))
        offset += array.size
    return views


def _all_reduce_sum_in_place(flat) -> None:
    if isinstance(flat, np.ndarray):
        _comm.Allreduce(_MPI.IN_PLACE, flat, op=_MPI.SUM)
    else:
        nccl, communicator = _nccl(flat)
        communicator.allReduce(
            flat.data.ptr, flat.data.ptr, flat.size, _nccl_type(nccl, flat.dtype), nccl.NCCL_SUM, _stream_pointer(flat)
        )


def _broadcast_in_place(flat, root: int) -> None:
    if isinstance(flat, np.ndarray):
        _comm.Bcast(flat, root=root)
    else:
        nccl, communicator = _nccl(flat)
        communicator.bcast(flat.data.ptr, flat.size, _nccl_type(nccl, flat.dtype), root, _stream_pointer(flat))


# ---- NCCL, for CuPy arrays ----------------------------------------------------------------------
def _nccl(array) -> tuple:
    """(the cupy.cuda.nccl module, the communicator of the GPU `array` is on). The communicator is
    made the first time each rank gets here: rank 0 draws a unique id and MPI sends it to all."""
    nccl = backend.cupy_module("cupy.cuda.nccl")  # only reached with CuPy arrays
    if not nccl.available:
        raise RuntimeError(
            "all-reducing CuPy arrays needs NCCL, which this CuPy cannot load; install NCCL "
            "for your CUDA version as CuPy's installation guide says"
        )
    device_index = array.device.id
    if device_index not in _nccl_communicators:
        unique_id = _comm.bcast(nccl.get_unique_id() if is_main() else None, root=0)
        with array.device:
            _nccl_communicators[device_index] = nccl.NcclCommunicator(world_size(), unique_id, rank())
    return nccl, _nccl_communicators[device_index]


def _nccl_type(nccl, dtype) -> int:
    names = {
        "float16": "NCCL_FLOAT16",
        "float32": "NCCL_FLOAT32",
        "float64": "NCCL_FLOAT64",
        "int32": "NCCL_INT32",
        "int64": "NCCL_INT64",
        "uint8": "NCCL_UINT8",
        "bool": "NCCL_UINT8",
    }
    if str(dtype) not in names:
        raise TypeError(f"NCCL cannot send arrays of dtype {dtype}; it takes {', '.join(names)}")
    return getattr(nccl, names[str(dtype)])


def _stream_pointer(array) -> int:
    """The current CUDA stream: NCCL runs there, after the kernels that made `array`, before the next."""
    return backend.xp_of(array).cuda.get_current_stream().ptr
