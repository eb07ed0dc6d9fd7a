"""The digits recipe in PyTorch + timm (dev only), to compare `scratchvit demo` against.

    /work/torchenv/bin/python tools/digits_reference.py [--epochs 30] [--seed 0]

Same data (scratchvit.data.load_digits: the fixed stratified split), same model keywords, same
optimizer, schedule and loss as scratchvit/demo.py; prints test accuracy and training time.
"""

import argparse
import os
import sys
import time

import numpy as np
import timm
import timm.optim
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from scratchvit.data import load_digits  # noqa: E402
from scratchvit.demo import DIGITS_VIT  # noqa: E402

CYCLE = os.environ.get("CYCLE", "0") == "1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    train, test = load_digits("train"), load_digits("test")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **DIGITS_VIT)
    optimizer = torch.optim.AdamW(timm.optim.param_groups_weight_decay(model, 0.05), lr=2e-3)
    steps_per_epoch = -(-len(train) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=args.epochs * steps_per_epoch,
                                                   cycle_momentum=CYCLE)  # fmt: skip
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    generator = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        order = torch.from_numpy(generator.permutation(len(train)))
        for first in range(0, len(train), 64):
            batch = order[first: first + 64]
            loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        predictions = model(torch.from_numpy(test.images)).argmax(1).numpy()
    print(f"torch {torch.__version__} timm {timm.__version__}: test accuracy "
          f"{100 * (predictions == test.labels).mean():.2f}% after {seconds:.1f} s of training")  # fmt: skip


if __name__ == "__main__":
    main()
