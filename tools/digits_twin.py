"""Train the digits recipe in scratchvit and in PyTorch + timm side by side, from the same initial
weights and with the same batches (dev only; needs torch + timm + scikit-learn):

    /work/torchenv/bin/python tools/digits_twin.py [--epochs 50] [--seed 0]

Prints per epoch the training loss and test accuracy of both. The two runs agree to the printed
digits for the first epochs; float32 rounding then makes them drift apart like two seeds would.
"""

import argparse
import os
import sys

import numpy as np
import timm
import timm.optim
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import scratchvit as sv  # noqa: E402
from scratchvit import ops as F  # noqa: E402
from scratchvit.app.demo import DIGITS_EPOCHS, DIGITS_VIT  # noqa: E402
from scratchvit.data import load_digits  # noqa: E402
from scratchvit.train import AdamW, OneCycleSchedule, param_groups_weight_decay  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=DIGITS_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train, test = load_digits("train"), load_digits("test")
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, **DIGITS_VIT)
    ours = sv.create_model("vit_tiny_patch16_224", **DIGITS_VIT)
    ours.load_state_dict({key: value.detach().numpy() for key, value in reference.state_dict().items()})

    total_steps = args.epochs * -(-len(train) // 64)
    reference_optimizer = torch.optim.AdamW(timm.optim.param_groups_weight_decay(reference, 0.05), lr=2e-3)
    reference_schedule = torch.optim.lr_scheduler.OneCycleLR(
        reference_optimizer, max_lr=2e-3, total_steps=total_steps, cycle_momentum=False
    )
    our_optimizer = AdamW(param_groups_weight_decay(ours, 0.05), lr=2e-3)
    our_schedule = OneCycleSchedule(max_lr=2e-3, total_steps=total_steps)

    generator = np.random.default_rng(args.seed)
    print("epoch  torch loss  scratchvit loss  torch acc  scratchvit acc")
    for epoch in range(args.epochs):
        order = generator.permutation(len(train))
        losses = [0.0, 0.0]
        for first in range(0, len(train), 64):
            images, labels = train.images[order[first : first + 64]], train.labels[order[first : first + 64]]
            loss = torch.nn.functional.cross_entropy(
                reference(torch.from_numpy(images)), torch.from_numpy(labels), label_smoothing=0.1
            )
            reference_optimizer.zero_grad()
            loss.backward()
            reference_optimizer.step()
            reference_schedule.step()
            our_schedule.step(our_optimizer)
            our_loss = F.cross_entropy(ours(sv.Tensor(images)), labels, label_smoothing=0.1)
            our_loss.backward()
            our_optimizer.step()
            our_optimizer.zero_grad()
            losses[0] += loss.item()
            losses[1] += our_loss.item()
        reference.eval()
        ours.eval()
        with torch.no_grad():
            reference_accuracy = (reference(torch.from_numpy(test.images)).argmax(1).numpy() == test.labels).mean()
        with sv.no_grad():
            our_accuracy = (ours(sv.Tensor(test.images)).numpy().argmax(1) == test.labels).mean()
        reference.train()
        ours.train()
        batches = -(-len(train) // 64)
        print(
            f"{epoch:5d}  {losses[0] / batches:10.4f}  {losses[1] / batches:15.4f}  "
            f"{100 * reference_accuracy:8.2f}%  {100 * our_accuracy:13.2f}%"
        )


if __name__ == "__main__":
    main()
