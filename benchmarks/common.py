"""Helpers shared by the benchmarks: timing, memory, and running one framework per subprocess."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time


def proc_status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux): VmRSS now, VmHWM peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak_memory() -> None:
    """Linux: writing 5 to clear_refs resets the peak (VmHWM) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass


def median_seconds(function, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_worker(script: str, python: str, arguments: list, threads: int, environment: dict | None = None) -> dict:
    """Run `python script *arguments` with every BLAS / OpenMP pool at `threads` (and `environment`
    added); parse its last stdout line as JSON, or return {"error": last stderr line}."""
    env = dict(os.environ, **(environment or {}))
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BENCH_THREADS"):
        env[variable] = str(threads)
    completed = subprocess.run([python, script, *arguments], env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {completed.returncode}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def torch_python_default() -> str:
    return os.environ.get("TORCH_PYTHON", sys.executable)
