"""The training loop: train_one_epoch, evaluate, and fit (epochs, evaluation, metrics, checkpoints,
resume, and a guard against a diverging loss).

One loop serves classification and MAE pretraining through `loss_fn(model, batch) -> (loss,
logits or None)`: `classification_loss()` runs the model and takes the cross-entropy (with label
smoothing, Szegedy et al. 2016, as the ViT/DeiT recipes); `masked_autoencoder_loss()` returns the
loss that an MAE forward computes itself (He et al. 2022, Sec. 3), with no logits to score.

A batch is what the data loader yields: (images (B, C, H, W) Tensor, labels (B,) int array).

Under MPI (scratchvit.train.distributed, several ranks) each rank runs this same loop on its part of
every batch: the gradients are averaged over the whole batch after backward, the reported loss
and metrics are those of the whole batch on every rank, and only rank 0 shows progress and
writes metrics and checkpoints. With one process none of that runs.
"""

from __future__ import annotations

import math
import time

from ..autograd import Tensor, no_grad
from ..io.checkpoint import save_checkpoint
from ..io.errors import CheckpointError
from ..models.pretrained import load_checkpoint
from ..ops.loss import cross_entropy
from . import distributed
from .metrics import AverageMeter, MetricsWriter, accuracy
from .optim import clip_grad_norm_


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; `.step` and `.epoch` say where. Training stops before that
    step's update, so the weights (and the last checkpoint) are those of the last good step."""

    def __init__(self, message: str, step: int, epoch: int):
        super().__init__(message)
        self.step, self.epoch = step, epoch


def classification_loss(label_smoothing: float = 0.0):
    """loss_fn for classification: logits = model(images), cross-entropy against the labels."""

    def loss_fn(model, batch):
        images, labels = batch[0], batch[1]
        logits = model(images)
        return cross_entropy(logits, labels, label_smoothing=label_smoothing), logits

    return loss_fn


def masked_autoencoder_loss(mask_ratio: float = 0.75):
    """loss_fn for MAE pretraining: the model's forward returns (loss, pred, mask); labels unused."""

    def loss_fn(model, batch):
        loss, _, _ = model(batch[0], mask_ratio=mask_ratio)
        return loss, None

    return loss_fn


def _progress_bar(iterable, total: int, description: str, enabled: bool):
    """A tqdm bar over `iterable` when enabled and tqdm is installed; None otherwise."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(iterable, total=total, desc=description, leave=False, dynamic_ncols=True)


def _print(message: str) -> None:
    try:
        from tqdm import tqdm
    except ImportError:
        print(message)
    else:
        tqdm.write(message)


def _call_loss(loss_fn, model, batch):
    result = loss_fn(model, batch)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Tensor)):
        raise TypeError(f"loss_fn must return (loss Tensor, logits or None), got {type(result).__name__}")
    return result


def train_one_epoch(
    model,
    loader,
    optimizer,
    loss_fn,
    *,
    epoch: int = 0,
    step: int = 0,
    schedule=None,
    clip_grad: float | None = None,
    metrics: MetricsWriter | None = None,
    log_interval: int = 50,
    progress: bool = False,
) -> tuple:
    """One pass over `loader`, one optimizer step per batch.

    step: the global step count so far (the schedule's position). clip_grad: max global gradient
    norm, or None. metrics: a MetricsWriter that gets a {"kind": "step", ...} line every
    log_interval steps. Raises NonFiniteLossError, before the update, when the loss is NaN or inf.
    Under MPI, `loader` yields this rank's part of each batch (possibly empty); the loss, the
    statistics and the step records are those of the whole batch, the same on every rank.

    Returns (stats, step): stats {"loss", "acc1" (when logits come back), "lr", "images",
    "time", "images_per_s"}, step the global step count after this epoch.
    """
    model.train()
    loss_meter, accuracy_meter = AverageMeter(), AverageMeter()
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    lr = optimizer.param_groups[0]["lr"]
    images_seen, started = 0, time.perf_counter()
    bar = _progress_bar(loader, len(loader) if hasattr(loader, "__len__") else None, f"epoch {epoch}", progress)
    try:
        for batch_index, batch in enumerate(bar if bar is not None else loader):
            if schedule is not None:
                lr = schedule.step(optimizer)
            batch_size = local_size = len(batch[0])
            loss, logits, loss_value = None, None, 0.0
            if local_size:  # under MPI a rank's part of a small last batch can be empty
                loss, logits = _call_loss(loss_fn, model, batch)
                loss_value = loss.item()
            if distributed.world_size() > 1:  # the whole batch's loss and size: every rank stops together
                loss_sum, batch_size = distributed.all_reduce_sum([loss_value * local_size, local_size])
                loss_value, batch_size = float(loss_sum / batch_size), int(batch_size)
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(
                    f"the loss is {loss_value} at step {step} (epoch {epoch}, batch {batch_index}); stopped before "
                    "updating the weights (lower the lr, add warmup or clip_grad)",
                    step=step,
                    epoch=epoch,
                )
            optimizer.zero_grad()
            if loss is not None:
                loss.backward()
            distributed.all_reduce_grads(parameters, weight=local_size)
            grad_norm = clip_grad_norm_(parameters, clip_grad) if clip_grad is not None else None
            optimizer.step()

            images_seen += batch_size
            loss_meter.update(loss_value, batch_size)
            if logits is not None:
                accuracy_meter.update(accuracy(logits, batch[1])[0], local_size)
            images_per_s = images_seen / max(time.perf_counter() - started, 1e-9)
            if bar is not None:
                bar.set_postfix(loss=f"{loss_meter.average:.4f}", lr=f"{lr:.2e}", img_s=f"{images_per_s:.0f}")
            if metrics is not None and step % log_interval == 0:
                record = {"kind": "step", "epoch": epoch, "step": step, "loss": loss_value, "lr": lr}
                if grad_norm is not None:
                    record["grad_norm"] = grad_norm
                metrics.write(record)
            step += 1
    finally:
        if bar is not None:
            bar.close()
    _combine_ranks(accuracy_meter)
    elapsed = time.perf_counter() - started
    stats = {
        "loss": loss_meter.average,
        "lr": lr,
        "images": images_seen,
        "time": elapsed,
        "images_per_s": images_seen / max(elapsed, 1e-9),
    }
    if accuracy_meter.count:
        stats["acc1"] = accuracy_meter.average
    return stats, step


def _combine_ranks(*meters) -> None:
    """Under MPI: make each meter the average over every rank's samples (sums and counts added)."""
    if distributed.world_size() > 1:
        for meter in meters:
            meter.sum, count = distributed.all_reduce_sum([meter.sum, meter.count])
            meter.count = int(count)


def evaluate(model, loader, loss_fn=None, topk=(1, 5)) -> dict:
    """Mean loss and top-k accuracies (percent) over `loader`, in eval mode under no_grad.

    loss_fn: as for training; default plain cross-entropy. Returns {"loss", "acc1", "acc5", ...}
    (the accuracies only when loss_fn returns logits). The model's train/eval mode is restored.
    Under MPI each rank evaluates its part of the batches and every rank returns the results
    over all of them.
    """
    loss_fn = loss_fn or classification_loss()
    was_training = model.training
    model.eval()
    loss_meter = AverageMeter()
    accuracy_meters = {k: AverageMeter() for k in topk}
    try:
        with no_grad():
            for batch in loader:
                if len(batch[0]) == 0:  # a rank's empty part of a small last batch
                    continue
                loss, logits = _call_loss(loss_fn, model, batch)
                batch_size = len(batch[0])
                loss_meter.update(loss.item(), batch_size)
                if logits is not None:
                    for k, value in zip(topk, accuracy(logits, batch[1], topk), strict=True):
                        accuracy_meters[k].update(value, batch_size)
    finally:
        model.train(was_training)
    _combine_ranks(loss_meter, *accuracy_meters.values())
    results = {"loss": loss_meter.average}
    results.update({f"acc{k}": meter.average for k, meter in accuracy_meters.items() if meter.count})
    return results


def fit(
    model,
    train_loader,
    optimizer,
    *,
    epochs: int,
    eval_loader=None,
    loss_fn=None,
    label_smoothing: float = 0.0,
    schedule=None,
    clip_grad: float | None = None,
    checkpoint=None,
    resume=None,
    metrics=None,
    topk=(1, 5),
    log_interval: int = 50,
    progress: bool = True,
) -> list:
    """Train for `epochs` epochs (counting those a resumed run already did); returns the history.

    loss_fn: `loss_fn(model, batch) -> (loss, logits or None)`; default classification_loss
      (label_smoothing) for training and plain cross-entropy for evaluation.
    eval_loader: evaluated after every epoch (loss, top-k accuracy) when given.
    schedule: a Schedule, stepped before every optimizer step; None keeps the groups' lr.
    checkpoint: a path, written atomically after every epoch (model, optimizer, schedule, epoch,
      step, RNG states, history). resume: a checkpoint path to go on from: restores all of that and
      starts at the next epoch, calling train_loader.set_epoch(epoch) as every epoch does.
    metrics: a JSON Lines path; one line per epoch, and one per log_interval steps.
    progress: tqdm bars and a line per epoch (when tqdm is installed).

    History: one dict per epoch: epoch, step, train_loss, train_acc1, lr, eval_loss, eval_acc1,
    eval_acc5, time, images_per_s. Raises NonFiniteLossError naming the step when the loss
    diverges; the last checkpoint written stays as it was.

    Under MPI every rank calls fit with its own loaders (DataLoader(num_replicas=, rank=)): rank
    0's parameters are broadcast to all at the start (after resuming), and only rank 0 shows
    progress and writes metrics and the checkpoint, which every rank can resume from. Resuming
    restores rank 0's random generators on rank 0 only; the others keep their own streams.
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    train_loss_fn = loss_fn or classification_loss(label_smoothing)
    eval_loss_fn = loss_fn or classification_loss()
    start_epoch, step, history, last_saved = 0, 0, [], None
    if resume is not None:
        state = load_checkpoint(resume, model, optimizer, schedule, restore_rng=distributed.is_main())
        if state.epoch is None or state.step is None:
            raise CheckpointError(
                f"{state.path}: the checkpoint holds no epoch and step to resume from (not written by fit)"
            )
        start_epoch, step = state.epoch + 1, state.step
        history = list(state.extra.get("history", []))
        last_saved = f"{state.path} (epoch {state.epoch})"
    distributed.broadcast_parameters(model)
    progress = progress and distributed.is_main()
    writer = MetricsWriter(metrics) if metrics is not None and distributed.is_main() else None
    try:
        for epoch in range(start_epoch, epochs):
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            try:
                stats, step = train_one_epoch(
                    model,
                    train_loader,
                    optimizer,
                    train_loss_fn,
                    epoch=epoch,
                    step=step,
                    schedule=schedule,
                    clip_grad=clip_grad,
                    metrics=writer,
                    log_interval=log_interval,
                    progress=progress,
                )
            except NonFiniteLossError as error:
                kept = f"the last good checkpoint is {last_saved}" if last_saved else "no checkpoint was written yet"
                raise NonFiniteLossError(f"{error}; {kept}", step=error.step, epoch=error.epoch) from None
            record = {"epoch": epoch, "step": step, "train_loss": stats["loss"], "lr": stats["lr"]}
            if "acc1" in stats:
                record["train_acc1"] = stats["acc1"]
            if eval_loader is not None:
                evaluation = evaluate(model, eval_loader, eval_loss_fn, topk)
                record.update({f"eval_{key}": value for key, value in evaluation.items()})
            record.update(time=stats["time"], images_per_s=stats["images_per_s"])
            history.append(record)
            if writer is not None:
                writer.write({"kind": "epoch", **record})
            if checkpoint is not None:
                saved = checkpoint  # rank 0 writes it; the other ranks name the same file in their errors
                if distributed.is_main():
                    saved = save_checkpoint(
                        checkpoint, model, optimizer, schedule, epoch=epoch, step=step, extra={"history": history}
                    )
                last_saved = f"{saved} (epoch {epoch})"
            if progress:
                _print(
                    " ".join(
                        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
                        for key, value in record.items()
                    )
                )
    finally:
        if writer is not None:
            writer.close()
    return history
