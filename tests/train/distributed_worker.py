"""One rank of the data-parallel tests (tests/test_distributed.py starts it under mpiexec, or as
one plain process): trains a small ViT with fit() on a fixed random data set and writes, per
rank, its history (rank<r>.json) and final parameters (rank<r>.npz) into --out.

    mpiexec -n 2 python tests/distributed_worker.py --out DIR --epochs 2 --size 17 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # scratchvit from this checkout

import scratchvit as sv  # noqa: E402
from scratchvit.data import ArrayDataset, DataLoader  # noqa: E402
from scratchvit.train import (  # noqa: E402
    SGD,
    classification_loss,
    distributed,  # noqa: E402
    fit,
)

CLASSES = 3


def data(size: int, seed: int) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((size, 3, 8, 8), dtype=np.float32)
    return ArrayDataset(images, rng.integers(0, CLASSES, size), [f"class{k}" for k in range(CLASSES)])


def failing_at(call: int, loss_fn):
    """loss_fn that raises on this rank at its call-th call (counted from 0)."""
    calls = []

    def loss(model, batch):
        if len(calls) == call:
            raise RuntimeError(f"injected failure at call {call}")
        calls.append(call)
        return loss_fn(model, batch)

    return loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=17, help="training images")
    parser.add_argument("--batch-size", type=int, default=8, help="the global batch")
    parser.add_argument("--resume", help="a checkpoint to go on from")
    parser.add_argument("--drop-path", type=float, default=0.0, help="the ViT's drop_path_rate (random per rank)")
    parser.add_argument("--bucket-elements", type=int, help="all-reduce bucket size, small to make many buckets")
    parser.add_argument("--fail-rank", type=int, help="this rank raises ...")
    parser.add_argument("--fail-call", type=int, default=1, help="... at this call of its loss function")
    args = parser.parse_args()

    distributed.init()
    rank, world_size = distributed.rank(), distributed.world_size()
    if args.bucket_elements:
        distributed.BUCKET_ELEMENTS = args.bucket_elements
    # Each rank its own seed, so the models differ until fit broadcasts rank 0's.
    sv.manual_seed(rank)
    model = sv.create_model(
        "vit_tiny_patch16_224",
        num_classes=CLASSES,
        img_size=8,
        patch_size=4,
        embed_dim=32,
        depth=2,
        num_heads=2,
        drop_path_rate=args.drop_path,
    )
    train_loader = DataLoader(
        data(args.size, seed=1), args.batch_size, shuffle=True, seed=5, num_replicas=world_size, rank=rank
    )
    eval_loader = DataLoader(data(11, seed=2), 4, num_replicas=world_size, rank=rank)
    # SGD: its update is linear in the gradient, so float rounding stays rounding (Adam divides
    # it by sqrt(v), which turns the float noise of a zero gradient, e.g. of the key bias, into lr-sized steps).
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    loss_fn = classification_loss(label_smoothing=0.1)
    if args.fail_rank == rank:
        loss_fn = failing_at(args.fail_call, loss_fn)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history = fit(
        model,
        train_loader,
        optimizer,
        epochs=args.epochs,
        eval_loader=eval_loader,
        loss_fn=loss_fn,
        checkpoint=out / "checkpoint.npz",
        resume=args.resume,
        metrics=out / "metrics.jsonl",
        progress=False,
    )
    for record in history:  # timings differ from run to run
        del record["time"], record["images_per_s"]
    (out / f"rank{rank}.json").write_text(json.dumps({"world_size": world_size, "history": history}))
    np.savez(out / f"rank{rank}.npz", **model.state_dict())


if __name__ == "__main__":
    main()
