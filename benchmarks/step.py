"""Median time of one full training step (forward, backward, AdamW update), scratchvit beside
PyTorch on the same machine, in the same run, with the same batch and the same thread count.

    python benchmarks/step.py vit_s16_224_b8 --peer torch --steps 7
    python benchmarks/step.py all --peer torch
    python benchmarks/step.py all --peer torch --rounds 3

Each framework runs in its own subprocess so their peak memory is measured apart: "peak memory
above the import baseline" is the peak RSS after the steps minus the RSS once the framework is
imported. Prints one JSON line per workload. PyTorch and timm (and the official MAE source, for
mae_* workloads, via --mae-src) come from a separate environment: --torch-python PATH.

--rounds R alternates the workers R times (scratchvit, torch, scratchvit, ...) and reports
the median over rounds of each framework's median step and of the round's ratio, with the
ratios' range: on a shared or throttled virtual machine a step's time can drift by tens of
percent between one process and the next, and a ratio taken within a round cancels most of it.

scratchvit runs as the `scratchvit` command does: kernels.tune_process() first, the fast tier.
Two more scratchvit workers can join each round, each with its own ratio to PyTorch:
    --textbook                the textbook tier (SCRATCHVIT_KERNELS=textbook): every op as ops/ writes it
    --baseline-checkout DIR   another checkout of scratchvit (e.g. a git worktree of an earlier
                              commit), run by that checkout's own benchmarks/step.py worker
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # common.py
sys.path.insert(0, os.path.dirname(HERE))  # scratchvit, when run from a checkout without installing
from common import median_seconds, proc_status_bytes, reset_peak_memory, run_worker, torch_python_default  # noqa: E402

from scratchvit.app.recipes import WORKLOADS  # noqa: E402


def worker_scratchvit(name: str, steps: int, warmup: int, device: str) -> dict:
    import scratchvit as sv
    from scratchvit.app.recipes import benchmark
    from scratchvit.models.summary import summarize

    if sv.kernels.current_tier() == "fast":
        sv.kernels.tune_process()  # as the scratchvit command does
    reset_peak_memory()
    baseline = proc_status_bytes("VmRSS")
    result = benchmark(name, device=device, steps=steps, warmup=warmup)
    peak = proc_status_bytes("VmHWM") - baseline
    workload = WORKLOADS[name]
    shape = (workload.batch_size, workload.in_chans, workload.img_size, workload.img_size)
    macs = summarize(sv.create_model(workload.model, **workload.kwargs), shape).total_macs
    return {"seconds": result["median_s"], "peak_bytes": peak, "forward_macs": macs}


def worker_torch(name: str, steps: int, warmup: int, device: str, mae_src: str | None) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
    workload = WORKLOADS[name]
    reset_peak_memory()
    baseline = proc_status_bytes("VmRSS")
    torch.manual_seed(0)
    if workload.model.startswith("mae_"):
        if not mae_src:
            raise SystemExit("mae workloads need --mae-src DIR with the official models_mae.py")
        model = _official_mae(workload, mae_src)
    else:
        import timm

        model = timm.create_model(workload.model, pretrained=False, **workload.kwargs)
    model = model.to(device).train()
    from timm.optim import param_groups_weight_decay as torch_groups

    optimizer = torch.optim.AdamW(torch_groups(model, 0.05), lr=1e-4)
    rng = np.random.default_rng(0)
    shape = (workload.batch_size, workload.in_chans, workload.img_size, workload.img_size)
    images = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).to(device)
    labels = torch.from_numpy(rng.integers(0, workload.num_classes, workload.batch_size)).to(device)

    def step():
        if workload.mask_ratio is not None:
            loss = model(images, mask_ratio=workload.mask_ratio)[0]
        else:
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device != "cpu":
            torch.cuda.synchronize()

    seconds = median_seconds(step, steps, warmup)
    return {"seconds": seconds, "peak_bytes": proc_status_bytes("VmHWM") - baseline}


def _official_mae(workload, mae_src: str):
    import numpy as np
    import timm.models.vision_transformer as timm_vit

    np.float = float  # the official pos_embed code predates NumPy 1.24
    sys.path.insert(0, mae_src)
    import models_mae

    class Block(timm_vit.Block):  # the official code passes qk_scale, which timm >= 0.4 dropped
        def __init__(self, *args, qk_scale=None, **kwargs):
            super().__init__(*args, **kwargs)

    models_mae.Block = Block
    return getattr(models_mae, workload.model)(**workload.kwargs)  # the official builders set eps 1e-6


def _worker_result(variant: str, name: str, args) -> dict:
    """One worker's result: variant "scratchvit", "textbook", "baseline" or "torch"."""
    framework = "torch" if variant == "torch" else "scratchvit"
    python = args.torch_python if framework == "torch" else sys.executable
    script, environment = os.path.abspath(__file__), {}
    if variant == "textbook":
        environment["SCRATCHVIT_KERNELS"] = "textbook"
    if variant == "baseline":
        script = os.path.join(os.path.abspath(args.baseline_checkout), "benchmarks", "step.py")
    arguments = [name, "--worker", framework, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    arguments += ["--device", args.device]
    if framework == "torch" and args.mae_src:
        arguments += ["--mae-src", args.mae_src]
    return run_worker(script, python, arguments, args.threads, environment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=sorted(WORKLOADS) + ["all"])
    parser.add_argument("--peer", choices=["torch", "none"], default="none")
    parser.add_argument("--steps", type=int, default=7, help="timed steps (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two workers this many times")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--torch-python", default=torch_python_default())
    parser.add_argument("--mae-src", default=os.environ.get("MAE_SRC"))
    parser.add_argument("--textbook", action="store_true", help="also time the textbook tier")
    parser.add_argument("--baseline-checkout", help="also time the scratchvit of this checkout")
    parser.add_argument("--worker", choices=["scratchvit", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "scratchvit":
        print(json.dumps(worker_scratchvit(args.workload, args.steps, args.warmup, args.device)))
        return
    if args.worker == "torch":
        print(json.dumps(worker_torch(args.workload, args.steps, args.warmup, args.device, args.mae_src)))
        return

    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    names = sorted(WORKLOADS) if args.workload == "all" else [args.workload]
    for name in names:
        print(json.dumps(_compare(name, args)), flush=True)


def _compare(name: str, args) -> dict:
    """One JSON line for one workload: medians over args.rounds rounds of alternating workers."""
    line = {"workload": name, "device": args.device, "threads": args.threads, "steps": args.steps}
    if args.rounds > 1:
        line["rounds"] = args.rounds
    variants = ["scratchvit"] + ["textbook"] * args.textbook + ["baseline"] * bool(args.baseline_checkout)
    variants += ["torch"] if args.peer == "torch" else []
    runs = {variant: [] for variant in variants}
    for _ in range(args.rounds):
        for variant in variants:
            runs[variant].append(_worker_result(variant, name, args))
    for variant, results in runs.items():
        errors = [run["error"] for run in results if "error" in run]
        if errors:
            line[f"{variant}_error"] = errors[0]
            return line
    ours = runs["scratchvit"]
    flops = 3 * 2 * ours[0]["forward_macs"]  # backward does about twice the forward's products
    for variant, results in runs.items():
        seconds = statistics.median(run["seconds"] for run in results)
        line[f"{variant}_s"] = round(seconds, 4)
        line[f"{variant}_peak_mib"] = round(statistics.median(run["peak_bytes"] for run in results) / 2**20)
        if variant != "torch":
            line[f"{variant}_gflops"] = round(flops / seconds / 1e9, 1)
    for variant, results in runs.items():
        if variant == "torch" or "torch" not in runs:
            continue
        ratios = [run["seconds"] / peer["seconds"] for run, peer in zip(results, runs["torch"], strict=True)]
        prefix = "" if variant == "scratchvit" else f"{variant}_"
        line[f"{prefix}ratio"] = round(statistics.median(ratios), 3)
        line[f"{prefix}memory_ratio"] = round(line[f"{variant}_peak_mib"] / max(line["torch_peak_mib"], 1), 3)
        if args.rounds > 1:
            line[f"{prefix}ratio_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
    return line


if __name__ == "__main__":
    main()
