"""`scratchvit train|pretrain|linprobe|finetune|eval ... --procs N`: N ranks of the same command on this
machine, each on one thread, started by MPI's `mpiexec` (scratchvit.train.distributed trains them
data-parallel).

On a CPU, N single-threaded processes that split the batch keep every core busy with whole ops
(one BLAS thread, no hand-offs between threads), where one process shares each op among threads;
`python benchmarks/threads_or_processes.py` measures both, beside PyTorch. `--procs N` is the
same as `OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 mpiexec -n N scratchvit ...`, written for you.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_MPI_HINT = "pip install 'scratchvit[mpi]' (mpi4py and the MPICH wheel, which brings mpiexec)"


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (where the MPICH wheel of the mpi extra puts it), else the
    first on PATH; None when there is none."""
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return shutil.which("mpiexec", path=search)


def procs_count(text: str) -> int:
    """argparse type of --procs: an int >= 1."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes >= 1, got {text!r}")
    return count


def child_argv(argv: list) -> list:
    """`argv` without its --procs option: `--procs N`, `--procs=N`, or an abbreviation argparse
    took for it (`--proc N`; the parser has accepted argv already, so a prefix is not ambiguous)."""
    child, skip_value = [], False
    for token in map(str, argv):
        name, equals, _ = token.partition("=")
        if skip_value:
            skip_value = False
        elif len(name) > 2 and "--procs".startswith(name):
            skip_value = not equals
        else:
            child.append(token)
    return child


def launch_local(procs: int, argv: list) -> int:
    """Run `python -m scratchvit *argv` (less --procs) as `procs` ranks under mpiexec, each with
    one OpenMP / OpenBLAS / MKL thread; wait for them and return mpiexec's exit code (128 + the
    signal's number if a signal ended it). RuntimeError, saying what to install, without an
    mpiexec or mpi4py."""
    mpiexec = find_mpiexec()
    missing = [name for name, found in (("mpiexec", mpiexec), ("mpi4py", find_spec("mpi4py"))) if found is None]
    if missing:
        raise RuntimeError(
            f"--procs {procs} starts the ranks with MPI, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing: {_MPI_HINT}"
        )
    command = [mpiexec, "-n", str(procs), sys.executable, "-m", "scratchvit", *child_argv(argv)]
    code = subprocess.run(command, env={**os.environ, **ONE_THREAD}).returncode
    return code if code >= 0 else 128 - code
