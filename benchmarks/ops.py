"""Forward + backward of the hot ops at ViT-S / Swin-T shapes, scratchvit beside PyTorch in the
same run, with GFLOP/s (GEMM-like ops) or GB/s (memory-bound ops), and NumPy's float32 GEMM
peak measured alongside as the ceiling. Prints one JSON line per op.

    python benchmarks/ops.py --torch-python /path/to/venv-with-torch/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # common.py
sys.path.insert(0, os.path.dirname(HERE))  # scratchvit, when run from a checkout without installing
from common import median_seconds, run_worker, torch_python_default  # noqa: E402

# name -> (shapes of the float32 inputs, floating-point operations of forward + backward or None,
#          bytes moved forward + backward or None). ViT-S/16 at batch 8: 8 x 197 tokens of 384;
#          Swin-T stage 1 at batch 4: 56 x 56 tokens of 96, windows of 7 x 7, 3 heads.
TOKENS, WIDTH = 8 * 197, 384
CASES = {
    "linear_qkv": ([(8, 197, WIDTH), (3 * WIDTH, WIDTH), (3 * WIDTH,)], 3 * 2 * TOKENS * WIDTH * 3 * WIDTH, None),
    "linear_fc1": ([(8, 197, WIDTH), (4 * WIDTH, WIDTH), (4 * WIDTH,)], 3 * 2 * TOKENS * WIDTH * 4 * WIDTH, None),
    "layer_norm": ([(8, 197, WIDTH), (WIDTH,), (WIDTH,)], None, 5 * 4 * TOKENS * WIDTH),
    "softmax": ([(8, 6, 197, 197)], None, 5 * 4 * 8 * 6 * 197 * 197),
    "gelu": ([(8, 197, 4 * WIDTH)], None, 4 * 4 * TOKENS * 4 * WIDTH),
    "attention": ([(8, 6, 197, 64)] * 3, 3 * 2 * 2 * 8 * 6 * 197 * 197 * 64, None),
    "window_partition_roll": ([(4, 56, 56, 96)], None, 4 * 4 * 4 * 56 * 56 * 96),
    "patch_merge": ([(4, 56, 56, 96)], None, 4 * 4 * 4 * 56 * 56 * 96),
}


def scratchvit_case(name: str, arrays: list):
    """A function running the op forward and backward on scratchvit tensors."""
    import scratchvit as sv
    from scratchvit import ops as F

    tensors = [sv.Tensor(a, requires_grad=True) for a in arrays]
    run = {
        "linear_qkv": lambda x, w, b: F.linear(x, w, b),
        "linear_fc1": lambda x, w, b: F.linear(x, w, b),
        "layer_norm": lambda x, w, b: F.layer_norm(x, w, b, 1e-6),
        "softmax": lambda x: F.softmax(x, -1),
        "gelu": F.gelu,
        "attention": F.scaled_dot_product_attention,
        "window_partition_roll": lambda x: F.window_partition(F.roll(x, (-3, -3), (1, 2)), 7),
        "patch_merge": F.patch_merge,
    }[name]
    upstream = None

    def step():
        nonlocal upstream
        out = run(*tensors)
        upstream = upstream if upstream is not None else out.xp.ones(out.shape, out.dtype)
        out.backward(upstream)

    return step


def torch_case(name: str, arrays: list):
    import torch
    import torch.nn.functional as TF

    tensors = [torch.from_numpy(a).requires_grad_() for a in arrays]

    def window_partition_roll(x):
        x = torch.roll(x, (-3, -3), (1, 2))
        b, h, w, c = x.shape
        return x.view(b, h // 7, 7, w // 7, 7, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, 7, 7, c)

    def patch_merge(x):
        b, h, w, c = x.shape
        return x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).flatten(3)

    run = {
        "linear_qkv": TF.linear,
        "linear_fc1": TF.linear,
        "layer_norm": lambda x, w, b: TF.layer_norm(x, (x.shape[-1],), w, b, 1e-6),
        "softmax": lambda x: torch.softmax(x, -1),
        "gelu": TF.gelu,
        "attention": TF.scaled_dot_product_attention,
        "window_partition_roll": window_partition_roll,
        "patch_merge": patch_merge,
    }[name]

    def step():
        out = run(*tensors)
        out.backward(torch.ones_like(out))
        for t in tensors:
            t.grad = None

    return step


def worker(framework: str, repeats: int, names: list) -> dict:
    """framework "scratchvit" (fast tier, tuned as the scratchvit command tunes the process),
    "textbook" (SCRATCHVIT_KERNELS=textbook, the process as it is) or "torch"."""
    import numpy as np

    if framework == "torch":
        import torch

        torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
    rng = np.random.default_rng(0)
    results = {}
    if framework == "scratchvit":  # first: once scratchvit takes over, NumPy's own products run on one thread
        import scratchvit as sv

        size = 2048
        a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
        results["numpy_sgemm_gflops"] = 2 * size**3 / median_seconds(lambda: a @ b, repeats, warmup=2) / 1e9
        sv.kernels.tune_process()
    for name in names:
        shapes = CASES[name][0]
        arrays = [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]
        make = torch_case if framework == "torch" else scratchvit_case
        results[name] = median_seconds(make(name, arrays), repeats, warmup=2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--only", nargs="+", choices=sorted(CASES), metavar="OP", help=f"run only these ops (of {', '.join(CASES)})"
    )
    parser.add_argument("--torch-python", default=torch_python_default())
    parser.add_argument("--textbook", action="store_true", help="also time the textbook tier")
    parser.add_argument("--worker", choices=["scratchvit", "textbook", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeats, args.only or list(CASES))))
        return
    script, options = os.path.abspath(__file__), ["--repeats", str(args.repeats)]
    if args.only:
        options += ["--only", *args.only]
    ours = run_worker(script, sys.executable, options + ["--worker", "scratchvit"], args.threads)
    textbook = {}
    if args.textbook:
        textbook_environment = {"SCRATCHVIT_KERNELS": "textbook"}
        textbook = run_worker(
            script, sys.executable, options + ["--worker", "textbook"], args.threads, textbook_environment
        )
    peer = run_worker(script, args.torch_python, options + ["--worker", "torch"], args.threads)
    if "error" in ours:
        raise SystemExit(f"scratchvit worker failed: {ours['error']}")
    peak = ours.pop("numpy_sgemm_gflops")
    print(json.dumps({"numpy_sgemm_peak_gflops": round(peak, 1), "threads": args.threads}))
    for name in args.only or CASES:
        _, flops, moved = CASES[name]
        line = {"op": name, "scratchvit_ms": round(ours[name] * 1e3, 3)}
        if flops:
            line.update(
                scratchvit_gflops=round(flops / ours[name] / 1e9, 1),
                percent_of_peak=round(100 * flops / ours[name] / 1e9 / peak, 1),
            )
        if moved:
            line["scratchvit_gb_per_s"] = round(moved / ours[name] / 1e9, 1)
        if name in textbook:
            line["textbook_ms"] = round(textbook[name] * 1e3, 3)
        if "error" not in peer:
            line.update(torch_ms=round(peer[name] * 1e3, 3), ratio=round(ours[name] / peer[name], 3))
            if name in textbook:
                line["textbook_ratio"] = round(textbook[name] / peer[name], 3)
        print(json.dumps(line), flush=True)
    for label, result in (("textbook", textbook), ("torch", peer)):
        if "error" in result:
            print(json.dumps({f"{label}_error": result["error"]}))


if __name__ == "__main__":
    main()
