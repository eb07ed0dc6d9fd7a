"""One script for a machine with an NVIDIA GPU: everything the CPU-only CI cannot check, in one go,
within a deadline (8 minutes by default), as JSON lines on stdout.

    python benchmarks/gpu.py                          # installs the cuda extra matching the driver
    python benchmarks/gpu.py --no-install --torch-python /path/to/torch/env/bin/python

Steps, each a JSON line {"step": ..., "ok": true|false, "seconds": ..., ...}:
1. install: `pip install -e '.[cuda12|cuda13,test,demo,io]'`, the CUDA major taken from nvidia-smi;
2. cupy tests: `pytest -m cuda` on real CuPy: every test parametrized over the device, the tests
   of several GPUs, the sync budget, the fused kernels against the textbook, and the contract
   tests that hold the CuPy stand-in of the CPU-only CI to what CuPy refuses;
3. step: `benchmarks/step.py all --device cuda --peer torch` (PyTorch CUDA beside scratchvit in
   the same run; without a PyTorch with CUDA, scratchvit alone), one line per workload;
4. demo: `scratchvit demo --device cuda`, its time and test accuracy;
5. nccl: with two GPUs or more, a 2-process data-parallel training run over NCCL.
A step that fails or runs out of time says so and the script goes on; the exit code is 1 when any
step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Deadline:
    """Seconds left of the whole run; each step gets at most what is left."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def emit(step: str, ok: bool, started: float, **fields) -> bool:
    print(json.dumps({"step": step, "ok": ok, "seconds": round(time.monotonic() - started, 1), **fields}), flush=True)
    return ok


def run(command: list, deadline: Deadline, limit: float, env: dict | None = None) -> tuple:
    """(exit code or None when it ran out of time, stdout, stderr) of `command` in the checkout."""
    timeout = max(1.0, min(limit, deadline.left()))
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as expired:
        return None, expired.stdout or "", expired.stderr or ""
    return done.returncode, done.stdout, done.stderr


def last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else ""


def cuda_extra() -> str | None:
    """ "cuda12" or "cuda13", from the driver's CUDA version that nvidia-smi prints; None without it."""
    if shutil.which("nvidia-smi") is None:
        return None
    found = re.search(r"CUDA Version:\s*(\d+)", subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout)
    return None if found is None else ("cuda13" if int(found.group(1)) >= 13 else "cuda12")


def install(deadline: Deadline) -> bool:
    started = time.monotonic()
    extra = cuda_extra()
    if extra is None:
        return emit("install", False, started, error="nvidia-smi not found: no NVIDIA driver on this machine")
    code, _, err = run([sys.executable, "-m", "pip", "install", "-q", "-e", f".[{extra},test,demo,io]"], deadline, 240)
    return emit("install", code == 0, started, extra=extra, error=None if code == 0 else last_line(err))


def pytest_counts(output: str) -> dict:
    return {kind: int(count) for count, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output)}


def cupy_tests(deadline: Deadline) -> bool:
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "-x", "--no-header"]
    code, out, err = run(command, deadline, 240, env=dict(os.environ, CI="1"))
    counts = pytest_counts(last_line(out))
    ok = code == 0 and counts.get("passed", 0) > 0
    return emit("cupy tests", ok, started, **counts, error=None if ok else last_line(out) or last_line(err))


def torch_with_cuda(python: str) -> bool:
    """Whether `python` imports PyTorch with a GPU, and timm."""
    check = "import timm, torch; raise SystemExit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([python, "-c", check], capture_output=True).returncode == 0


def step_benchmark(deadline: Deadline, torch_python: str | None) -> bool:
    started = time.monotonic()
    peer = ["--peer", "torch", "--torch-python", torch_python] if torch_python else ["--peer", "none"]
    command = [sys.executable, "benchmarks/step.py", "all", "--device", "cuda", "--steps", "10", *peer]
    code, out, err = run(command, deadline, 180)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for row in rows:
        print(json.dumps({"step": "step.py", **row}), flush=True)
    failed = [row["workload"] for row in rows if any(key.endswith("error") for key in row)]
    ok = code == 0 and bool(rows) and not failed
    peer_used = torch_python is not None
    return emit("step", ok, started, workloads=len(rows), peer=peer_used, failed=failed, error=last_line(err) or None)


def demo(deadline: Deadline) -> bool:
    started = time.monotonic()
    out_dir = tempfile.mkdtemp(prefix="scratchvit-gpu-demo-")
    command = [
        sys.executable,
        "-m",
        "scratchvit",
        "demo",
        "--device",
        "cuda",
        "--out",
        out_dir,
        "--no-progress",
        "--overwrite",
    ]
    code, out, err = run(command, deadline, 150)
    found = re.search(r"test accuracy ([\d.]+)% after ([\d.]+) s of training", out)
    fields = {"accuracy": float(found.group(1)), "train_seconds": float(found.group(2))} if found else {}
    ok = code == 0 and found is not None
    return emit("demo", ok, started, **fields, error=None if ok else last_line(err) or last_line(out))


def nccl(deadline: Deadline) -> bool:
    started = time.monotonic()
    code, out, _ = run([sys.executable, "-c", "import cupy; print(cupy.cuda.runtime.getDeviceCount())"], deadline, 60)
    gpus = int(out.strip()) if code == 0 and out.strip().isdigit() else 0
    if gpus < 2:
        return emit("nccl", True, started, skipped=f"{gpus} GPU(s): the 2-process NCCL run needs two")
    code, _, err = run([sys.executable, "-m", "pip", "install", "-q", "-e", ".[mpi]"], deadline, 120)
    if code != 0:
        return emit("nccl", False, started, error=f"the mpi extra did not install: {last_line(err)}")
    out_dir = tempfile.mkdtemp(prefix="scratchvit-gpu-nccl-")
    model = ["--model", "vit_tiny_patch16_224", "--img-size", "8", "--patch-size", "2", "--depth", "2"]
    run_args = ["--data", "digits", "--epochs", "1", "--procs", "2", "--device", "cuda", "--out", out_dir]
    command = [sys.executable, "-m", "scratchvit", "train", *model, *run_args, "--no-progress"]
    code, _, err = run(command, deadline, 150)
    return emit("nccl", code == 0, started, gpus=gpus, error=None if code == 0 else last_line(err))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deadline", type=float, default=480, help="seconds for the whole run (default 480)")
    parser.add_argument("--no-install", dest="install", action="store_false", help="use the installed scratchvit")
    parser.add_argument(
        "--torch-python", default=os.environ.get("TORCH_PYTHON"), help="a Python with PyTorch (CUDA) and timm"
    )
    args = parser.parse_args()
    deadline = Deadline(args.deadline)
    if args.torch_python is None and torch_with_cuda(sys.executable):
        args.torch_python = sys.executable
    results = []
    if args.install:
        results.append(install(deadline))
    results += [cupy_tests(deadline), step_benchmark(deadline, args.torch_python), demo(deadline), nccl(deadline)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
