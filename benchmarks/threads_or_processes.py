"""Threads or processes: one training step (forward, backward, AdamW) of each workload on N cores,
timed four ways in one run, on the same global batch:

  threads   (a) one process, scratchvit's own threads: kernels.tune_process() first, as the
                `scratchvit` command does (OpenBLAS on one thread, large work cut over N threads)
  openblas  (b) one process without tune_process: the kernels on the calling thread, OpenBLAS
                with its own N threads in every product
  ranks     (c) N single-threaded MPI ranks, data-parallel, the batch split among them
                (scaling.py's worker; what `scratchvit train --procs N` runs)
  torch     (d) PyTorch + timm on N threads (step.py's torch worker)

    python benchmarks/threads_or_processes.py --torch-python /work/torchenv/bin/python
    python benchmarks/threads_or_processes.py --workloads vit_c32_b128 --procs 2 --rounds 5

--rounds R alternates the four ways R times. A way's step is the median over rounds of its median
step; its ratio to PyTorch (step time / PyTorch's, below 1 is faster) is the median over rounds
of the ratio within the round, which cancels most of the drift between processes on a shared
machine (as in step.py). Prints one JSON line per workload, then a table. (c) needs the mpi
extra for N > 1; PyTorch and timm come from --torch-python (default $TORCH_PYTHON).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # common.py, scaling.py
sys.path.insert(0, os.path.dirname(HERE))  # scratchvit, when run from a checkout without installing
import scaling  # noqa: E402
from common import run_worker, torch_python_default  # noqa: E402

from scratchvit.app.launch import find_mpiexec  # noqa: E402
from scratchvit.app.recipes import WORKLOADS  # noqa: E402

WAYS = {
    "threads": "(a) 1 process, scratchvit threads",
    "openblas": "(b) 1 process, OpenBLAS threads",
    "ranks": "(c) {n} MPI ranks, 1 thread each",
    "torch": "(d) PyTorch, {n} threads",
}
CLASSIFIERS = [name for name, spec in WORKLOADS.items() if spec.mask_ratio is None]  # scaling.py's worker


def worker(name: str, steps: int, warmup: int, tune: bool) -> dict:
    """(a) or (b) in this process: recipes.benchmark's median step, after tune_process() for (a)."""
    from scratchvit import kernels
    from scratchvit.app.recipes import benchmark

    if tune:
        kernels.tune_process()
    return {"seconds": benchmark(name, steps=steps, warmup=warmup)["median_s"]}


def measure(way: str, name: str, args) -> dict:
    """One way's median step, {"seconds": s}, or {"error": message}; each in its own processes."""
    timing = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    if way == "ranks":
        try:
            return {"seconds": scaling.run(name, args.procs, args.steps, args.warmup, find_mpiexec())["step_s"]}
        except SystemExit as error:  # scaling.run's report of a failed job
            return {"error": str(error).strip().splitlines()[-1]}
    if way == "torch":
        return run_worker(
            os.path.join(HERE, "step.py"), args.torch_python, [name, "--worker", "torch", *timing], args.procs
        )
    return run_worker(
        os.path.abspath(__file__), sys.executable, ["--worker", way, "--workloads", name, *timing], args.procs
    )


def compare(name: str, args) -> dict:
    """One JSON line: per way, the median step, samples/s of the global batch, the ratio to PyTorch."""
    runs = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            runs[way].append(measure(way, name, args))
    batch = WORKLOADS[name].batch_size
    line = {"workload": name, "global_batch": batch, "procs": args.procs, "steps": args.steps, "rounds": args.rounds}
    torch_ok = all("seconds" in run for run in runs["torch"])
    for way, results in runs.items():
        errors = [run["error"] for run in results if "error" in run]
        if errors:
            line[way] = {"error": errors[0]}
            continue
        seconds = statistics.median(run["seconds"] for run in results)
        line[way] = {"step_s": round(seconds, 4), "samples_per_s": round(batch / seconds, 1)}
        if torch_ok:
            ratios = [run["seconds"] / peer["seconds"] for run, peer in zip(results, runs["torch"], strict=True)]
            line[way]["vs_torch"] = round(statistics.median(ratios), 3)
    return line


def print_table(lines: list, procs: int) -> None:
    print(f"\n{'workload':<16}  {'way':<36}  {'step ms':>8}  {'samples/s':>9}  {'/ torch':>7}")
    for line in lines:
        for way, label in WAYS.items():
            result = line[way]
            if "error" in result:
                print(f"{line['workload']:<16}  {label.format(n=procs):<36}  error: {result['error']}")
                continue
            ratio = f"{result['vs_torch']:>7.2f}" if "vs_torch" in result else f"{'-':>7}"
            print(
                f"{line['workload']:<16}  {label.format(n=procs):<36}  {1e3 * result['step_s']:>8.1f}  "
                f"{result['samples_per_s']:>9.1f}  {ratio}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=CLASSIFIERS,
        metavar="WORKLOAD",
        default=["vit_c32_b128", "vit_s16_224_b8", "swin_t_224_b4"],
        help=f"of {', '.join(CLASSIFIERS)} (default: %(default)s)",
    )
    parser.add_argument("--procs", type=int, default=os.cpu_count(), help="N: cores, ranks, threads (default: all)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per run; medians are reported (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternate the four ways this many times (default 3)")
    parser.add_argument("--torch-python", default=torch_python_default(), help="a Python with torch and timm")
    parser.add_argument("--worker", choices=["threads", "openblas"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.workloads[0], args.steps, args.warmup, tune=args.worker == "threads")))
        return
    if min(args.procs, args.steps, args.rounds) < 1 or args.warmup < 0:
        parser.error("--procs, --steps and --rounds must be >= 1, --warmup >= 0")
    lines = []
    for name in args.workloads:
        lines.append(compare(name, args))
        print(json.dumps(lines[-1]), flush=True)
    print_table(lines, args.procs)


if __name__ == "__main__":
    main()
