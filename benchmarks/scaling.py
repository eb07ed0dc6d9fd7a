"""Data-parallel scaling: one training step of a workload on 1 process and on N (under mpiexec),
each process pinned to one core with one BLAS thread, the global batch split among the ranks as
`mpirun -n N scratchvit train` splits it.

    python benchmarks/scaling.py                          # vit_c32_b128 on 1 and 2 processes
    python benchmarks/scaling.py --processes 1 2 4 --steps 7

Per step: forward + backward on the rank's part of the batch, all_reduce_grads (the gradients
averaged over the ranks, flat buckets), the AdamW update. The all-reduce time inside the step
includes waiting for the slowest rank; `allreduce_alone_s` times the all-reduce alone after a
barrier, which is what the network and the copies into the buckets cost. Each rank writes its
numbers to a file of its own (rank<r>.json in a temporary folder), never to the shared stdout,
where two ranks' lines could run together. Prints one JSON line per process count (medians over
the steps, rank 0's clock) and then a table. Needs the mpi extra
(mpi4py and an mpiexec) for more than one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # scratchvit, when run from a checkout without installing

from scratchvit.app.launch import ONE_THREAD, find_mpiexec  # noqa: E402
from scratchvit.app.recipes import WORKLOADS  # noqa: E402


def worker(name: str, steps: int, warmup: int, results: str) -> None:
    """One rank: time the steps and write this rank's seconds to results/rank<r>.json."""
    import numpy as np

    from scratchvit import Tensor, backend, create_model
    from scratchvit.data import DistributedSampler
    from scratchvit.ops.loss import cross_entropy
    from scratchvit.train import AdamW, distributed, param_groups_weight_decay

    distributed.init()
    rank, world_size = distributed.rank(), distributed.world_size()
    # One core per rank: BLAS has one thread (ONE_THREAD), and any other thread pool shares the core.
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[rank % len(cores)]})
    spec = WORKLOADS[name]
    if spec.mask_ratio is not None:
        raise SystemExit(f"{name}: an MAE workload; this benchmark times classifiers")
    backend.manual_seed(0)
    model = create_model(spec.model, **spec.kwargs)
    distributed.broadcast_parameters(model)
    optimizer = AdamW(param_groups_weight_decay(model, 0.05), lr=1e-4)
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    # This rank's part of one global batch, as the training loader's DistributedSampler cuts it.
    sampler = DistributedSampler(spec.batch_size, spec.batch_size, num_replicas=world_size, rank=rank)
    local_batch = len(next(sampler.batches(epoch=0)))
    rng = np.random.default_rng(rank)
    images = Tensor(rng.standard_normal((local_batch, spec.in_chans, spec.img_size, spec.img_size), dtype=np.float32))
    labels = rng.integers(0, spec.num_classes, local_batch)

    def step() -> dict:
        started = time.perf_counter()
        loss = cross_entropy(model(images), labels)
        loss.backward()
        computed = time.perf_counter()
        distributed.all_reduce_grads(parameters, weight=local_batch)
        reduced = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        return {
            "step_s": time.perf_counter() - started,
            "compute_s": computed - started,
            "allreduce_s": reduced - computed,
        }

    for _ in range(warmup):
        step()
    timings = [step() for _ in range(steps)]
    loss = cross_entropy(model(images), labels)  # fresh gradients to all-reduce alone
    loss.backward()
    alone = []
    for _ in range(steps):
        distributed.all_reduce_sum([0.0])  # a barrier: every rank starts the all-reduce together
        started = time.perf_counter()
        distributed.all_reduce_grads(parameters, weight=local_batch)
        alone.append(time.perf_counter() - started)
    result = {key: statistics.median(timing[key] for timing in timings) for key in timings[0]}
    result.update(
        rank=rank,
        processes=world_size,
        local_batch=local_batch,
        allreduce_alone_s=statistics.median(alone),
        gradient_mib=sum(parameter.size for parameter in parameters) * 4 / 2**20,
    )
    written = Path(results) / f".rank{rank}.json.partial"
    written.write_text(json.dumps(result))
    os.replace(written, Path(results) / f"rank{rank}.json")  # whole or absent, never half a file


def run(name: str, processes: int, steps: int, warmup: int, mpiexec: str | None) -> dict:
    """The workload on `processes` ranks (one plain process for 1): rank 0's medians."""
    with tempfile.TemporaryDirectory(prefix="scaling-") as results:
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            name,
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--results",
            results,
        ]
        if processes > 1:
            if mpiexec is None:
                raise SystemExit("more than one process needs mpiexec: pip install -e '.[mpi]'")
            command = [mpiexec, "-n", str(processes), *command]
        completed = subprocess.run(command, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True)
        if completed.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr}")
        missing = [rank for rank in range(processes) if not (Path(results) / f"rank{rank}.json").is_file()]
        if missing:
            raise SystemExit(f"{' '.join(command)}: ranks {missing} wrote no results:\n{completed.stderr}")
        ranks = [json.loads((Path(results) / f"rank{rank}.json").read_text()) for rank in range(processes)]
    rank0 = next(result for result in ranks if result["rank"] == 0)
    batch = WORKLOADS[name].batch_size
    return {
        "workload": name,
        "processes": processes,
        "global_batch": batch,
        "local_batch": rank0["local_batch"],
        "step_s": rank0["step_s"],
        "samples_per_s": batch / rank0["step_s"],
        "compute_s": rank0["compute_s"],
        "allreduce_s": rank0["allreduce_s"],
        "allreduce_alone_s": rank0["allreduce_alone_s"],
        "gradient_mib": rank0["gradient_mib"],
        "slowest_rank_step_s": max(r["step_s"] for r in ranks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", nargs="?", default="vit_c32_b128", choices=list(WORKLOADS))
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts (default 1 2)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps; medians are reported (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--worker", metavar="WORKLOAD", help=argparse.SUPPRESS)
    parser.add_argument("--results", metavar="DIR", help=argparse.SUPPRESS)  # a worker's folder for rank<r>.json
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.warmup, args.results)
        return
    rows = []
    for processes in args.processes:
        rows.append(run(args.workload, processes, args.steps, args.warmup, find_mpiexec()))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    print(
        f"\n{'processes':>9}  {'step ms':>8}  {'samples/s':>9}  {'speed-up':>8}  {'efficiency':>10}  "
        f"{'all-reduce ms (in step / alone)':>31}"
    )
    for row in rows:
        speedup = row["samples_per_s"] / base["samples_per_s"]
        print(
            f"{row['processes']:>9}  {1e3 * row['step_s']:>8.1f}  {row['samples_per_s']:>9.1f}  {speedup:>8.2f}  "
            f"{speedup / row['processes'] * base['processes']:>10.0%}  "
            f"{1e3 * row['allreduce_s']:>15.1f} / {1e3 * row['allreduce_alone_s']:<13.1f}"
        )


if __name__ == "__main__":
    main()
