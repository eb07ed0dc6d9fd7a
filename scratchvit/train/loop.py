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

Nothing non-finite is saved: the loss is checked before every update on the CPU (every
READ_EVERY_ON_GPU steps on a GPU, which the host reads only then, so it never waits for the device
in between), the weights and optimizer state at the end of every epoch, and each checkpoint is
read back and verified before the one it replaces is let go (scratchvit.train.run_dir).
"""

from __future__ import annotations

import math
import time

from .. import backend
from ..autograd import Tensor, no_grad
from ..io.errors import CheckpointError
from ..models.pretrained import load_checkpoint
from ..ops.loss import cross_entropy
from . import distributed, run_dir
from .metrics import AverageMeter, MetricsWriter, accuracy, json_compatible
from .optim import clip_grad_norm_

READ_EVERY_ON_GPU = 20  # steps between the host's reads of the loss (the progress bar's refreshes) on a GPU


class NonFiniteLossError(RuntimeError):
    """Training diverged: the loss, or the weights or optimizer state, became NaN or infinite;
    `.step` and `.epoch` say where. A non-finite loss stops before that step's update; non-finite
    weights or optimizer state stop at the end of the epoch without saving them. Either way the
    last checkpoint, named in the message, holds finite values only."""

    def __init__(self, message: str, step: int, epoch: int):
        super().__init__(message)
        self.step, self.epoch = step, epoch


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says where it stopped and which checkpoint is the last.
    `.step` and `.epoch`: the step that was running, and its epoch."""

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
    log_interval steps. The loss comes to the host at every step on the CPU; on a GPU only every
    READ_EVERY_ON_GPU steps, at logged steps and at the last, so that the host never waits for the
    device in between (the progress bar refreshes at those reads). Raises NonFiniteLossError,
    before that step's update, when the loss read or the running sum of the epoch's losses is NaN
    or inf.
    Under MPI, `loader` yields this rank's part of each batch (possibly empty); the loss, the
    statistics and the step records are those of the whole batch, the same on every rank.

    Returns (stats, step): stats {"loss", "acc1" (when logits come back), "lr", "images",
    "time", "images_per_s"}, step the global step count after this epoch.
    """
    model.train()
    loss_meter, accuracy_meter = AverageMeter(), AverageMeter()
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    read_every = READ_EVERY_ON_GPU if parameters and parameters[0].device.kind != "cpu" else 1
    lr = optimizer.param_groups[0]["lr"]
    images_seen, started = 0, time.perf_counter()
    total = len(loader) if hasattr(loader, "__len__") else None
    bar = _progress_bar(loader, total, f"epoch {epoch}", progress)
    batch_index = 0
    try:
        for batch_index, batch in enumerate(bar if bar is not None else loader):
            if schedule is not None:
                lr = schedule.step(optimizer)
            local_size = len(batch[0])
            loss, logits = None, None
            if local_size:  # under MPI a rank's part of a small last batch can be empty
                loss, logits = _call_loss(loss_fn, model, batch)
                loss_meter.update(loss.data, local_size)
                if logits is not None:
                    accuracy_meter.update(accuracy(logits, batch[1])[0], local_size)
            logging = metrics is not None and step % log_interval == 0
            read = logging or step % read_every == 0 or batch_index + 1 == total
            if read:  # the loss comes to the host: checked before this step's update
                loss_value, running_sum = _read_losses(loss, loss_meter, local_size)
                if not (math.isfinite(loss_value) and math.isfinite(running_sum)):
                    where = "" if read_every == 1 else f", read every {read_every} steps on the GPU"
                    raise NonFiniteLossError(
                        f"the loss is {loss_value} at step {step} (epoch {epoch}, batch {batch_index}{where}); "
                        "stopped before updating the weights (lower the lr, add warmup or clip_grad)",
                        step=step,
                        epoch=epoch,
                    )
            optimizer.zero_grad()
            if loss is not None:
                loss.backward()
            distributed.all_reduce_grads(parameters, weight=local_size)
            grad_norm = clip_grad_norm_(parameters, clip_grad) if clip_grad is not None else None
            optimizer.step()

            images_seen += local_size
            if read and bar is not None:
                images_per_s = images_seen / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", img_s=f"{images_per_s:.0f}")
            if logging:
                record = {"kind": "step", "epoch": epoch, "step": step, "loss": loss_value, "lr": lr}
                if grad_norm is not None:
                    record["grad_norm"] = backend.read_scalar(grad_norm)
                metrics.write(record)
            step += 1
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted at step {step} (epoch {epoch}, batch {batch_index})", step=step, epoch=epoch
        ) from None
    finally:
        if bar is not None:
            bar.close()
    _combine_ranks(loss_meter, accuracy_meter)
    elapsed = time.perf_counter() - started
    stats = {
        "loss": loss_meter.average,
        "lr": lr,
        "images": loss_meter.count,
        "time": elapsed,
        "images_per_s": loss_meter.count / max(elapsed, 1e-9),
    }
    if accuracy_meter.count:
        stats["acc1"] = accuracy_meter.average
    return stats, step


def _read_losses(loss, meter: AverageMeter, local_size: int) -> tuple:
    """(the batch's loss, this rank's running loss sum) on the host, in one copy: the sum is NaN or
    inf when any step so far diverged, also one between two reads on a GPU. Under MPI the loss is
    the whole batch's (every rank reads at the same steps, so every rank stops together)."""
    value, running_sum = backend.read_values(loss.data if loss is not None else 0.0, meter.sum)
    if distributed.world_size() > 1:
        loss_sum, batch_size = distributed.all_reduce_sum([value * local_size, local_size])
        value = float(loss_sum / batch_size)
    return value, running_sum


def _combine_ranks(*meters) -> None:
    """Under MPI: make each meter the average over every rank's samples (sums and counts added)."""
    if distributed.world_size() > 1:
        for meter in meters:
            meter.sum, count = distributed.all_reduce_sum([backend.read_scalar(meter.sum), meter.count])
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
                loss_meter.update(loss.data, batch_size)
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
    config: dict | None = None,
    allow_config_change: bool = False,
) -> list:
    """Train for `epochs` epochs (counting those a resumed run already did); returns the history.

    loss_fn: `loss_fn(model, batch) -> (loss, logits or None)`; default classification_loss
      (label_smoothing) for training and plain cross-entropy for evaluation.
    eval_loader: evaluated after every epoch (loss, top-k accuracy) when given.
    schedule: a Schedule, stepped before every optimizer step; None keeps the groups' lr.
    checkpoint: a path, written after every epoch (model, optimizer, schedule, epoch, step, every
      rank's RNG states, history, config) by run_dir.save_verified_checkpoint: atomically, read
      back and verified, the checkpoint it replaces kept as <name>-prev<suffix>. Temporary files
      of an interrupted save are removed at the start.
    resume: a checkpoint path to go on from: restores all of that and starts at the next epoch,
      calling train_loader.set_epoch(epoch) as every epoch does. Refused (RunDirError) when it
      holds NaN or inf, when `epochs` is below the epochs it trained, or when its recorded config
      differs from `config` (each difference named) unless allow_config_change. A run that
      finished all `epochs` says so and trains nothing.
    metrics: a JSON Lines path; one line per epoch, and one per log_interval steps. On resume its
      lines of later epochs than the checkpoint's (a run killed after its last save) are cut.
    progress: tqdm bars and a line per epoch (when tqdm is installed).
    config: the run's settings (JSON-able), recorded in the checkpoint to check a resume against.

    History: one dict per epoch: epoch, step, train_loss, train_acc1, lr, eval_loss, eval_acc1,
    eval_acc5, time, images_per_s. Raises NonFiniteLossError naming the step and the last finite
    checkpoint when the loss diverges (before that update) or the weights or optimizer state hold
    NaN or inf at an epoch's end (not saved); TrainingInterrupted on Ctrl-C, naming the step and
    the last checkpoint.

    Under MPI every rank calls fit with its own loaders (DataLoader(num_replicas=, rank=)): rank
    0's parameters are broadcast to all at the start (after resuming), and only rank 0 shows
    progress and writes metrics and the checkpoint, which every rank can resume from. The
    checkpoint holds every rank's random generators: resumed with as many ranks, each rank goes on
    with its own stream exactly (dropout, drop path); with another number of ranks, rank 0 takes
    rank 0's and the others keep their own.
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    train_loss_fn = loss_fn or classification_loss(label_smoothing)
    eval_loss_fn = loss_fn or classification_loss()
    start_epoch, step, history, last_saved = 0, 0, [], None
    if checkpoint is not None and distributed.is_main():
        run_dir.remove_stale_partials(checkpoint)
    if resume is not None:
        state = _resume(resume, model, optimizer, schedule, epochs, config, allow_config_change)
        start_epoch, step = state.epoch + 1, state.step
        history = list(state.extra.get("history", []))
        last_saved = f"{state.path} (epoch {state.epoch})"
        if metrics is not None and distributed.is_main():
            run_dir.truncate_metrics(metrics, state.epoch)
        if start_epoch == epochs and distributed.is_main():
            _print(f"{state.path}: the run finished all {epochs} epochs already; nothing to train")
    distributed.broadcast_parameters(model)
    progress = progress and distributed.is_main()
    writer = MetricsWriter(metrics) if metrics is not None and distributed.is_main() else None
    epoch = start_epoch
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
                raise NonFiniteLossError(
                    f"{error}; {_last_good(last_saved)}", step=error.step, epoch=error.epoch
                ) from None
            _check_finite_state(model, optimizer, step, epoch, last_saved)
            record = {"epoch": epoch, "step": step, "train_loss": stats["loss"], "lr": stats["lr"]}
            if "acc1" in stats:
                record["train_acc1"] = stats["acc1"]
            if eval_loader is not None:
                evaluation = evaluate(model, eval_loader, eval_loss_fn, topk)
                record.update({f"eval_{key}": value for key, value in evaluation.items()})
            record.update(time=stats["time"], images_per_s=stats["images_per_s"])
            history.append(json_compatible(record))  # NaN -> None: the history goes into JSON
            if writer is not None:
                writer.write({"kind": "epoch", **record})
            if checkpoint is not None:
                last_saved = _save(checkpoint, model, optimizer, schedule, epoch, step, history, config)
            if progress:
                _print(
                    " ".join(
                        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
                        for key, value in record.items()
                    )
                )
    except TrainingInterrupted as interrupt:
        raise TrainingInterrupted(
            f"{interrupt}; {_last_checkpoint(last_saved)}", step=interrupt.step, epoch=interrupt.epoch
        ) from None
    except KeyboardInterrupt:  # in evaluation or while saving: the epoch's steps were done
        raise TrainingInterrupted(
            f"interrupted after step {step} (epoch {epoch}); {_last_checkpoint(last_saved)}", step=step, epoch=epoch
        ) from None
    finally:
        if writer is not None:
            writer.close()
    return history


def _last_good(last_saved) -> str:
    return f"the last good checkpoint is {last_saved}" if last_saved else "no checkpoint was written yet"


def _last_checkpoint(last_saved) -> str:
    return f"the last checkpoint is {last_saved}" if last_saved else "no checkpoint was written"


def _resume(path, model, optimizer, schedule, epochs: int, config, allow_config_change: bool):
    """Load the checkpoint `path` into the model, optimizer and schedule, and each rank's random
    generators; refuse a checkpoint that cannot be resumed (fit's docstring says which)."""
    state = load_checkpoint(path, model, optimizer, schedule, restore_rng=distributed.is_main())
    if state.epoch is None or state.step is None:
        raise CheckpointError(
            f"{state.path}: the checkpoint holds no epoch and step to resume from (not written by fit)"
        )
    rank_states = state.extra.get("rank_rng_states")
    if isinstance(rank_states, list) and len(rank_states) == distributed.world_size():
        backend.set_rng_state(rank_states[distributed.rank()])
    bad = run_dir.non_finite_arrays(model, optimizer)
    if bad:
        raise run_dir.RunDirError(
            f"{state.path}: holds NaN or inf in {len(bad)} arrays ({run_dir.name_some(bad)}), so it cannot be "
            f"resumed; {run_dir.previous_checkpoint_path(state.path).name} beside it is the one before it"
        )
    run_dir.check_resume(state, epochs, config, allow_config_change)
    return state


def _check_finite_state(model, optimizer, step: int, epoch: int, last_saved) -> None:
    """NonFiniteLossError when the weights or the optimizer state hold NaN or inf (on any rank)."""
    bad = run_dir.non_finite_arrays(model, optimizer)
    if distributed.world_size() > 1:  # the ranks hold the same values; every rank stops together
        if not int(distributed.all_reduce_sum([len(bad)])[0]):
            return
    elif not bad:
        return
    raise NonFiniteLossError(
        f"training diverged: after step {step} (end of epoch {epoch}) the weights or optimizer state hold NaN or "
        f"inf ({run_dir.name_some(bad) or 'on another rank'}); not saved (lower the lr, add warmup or clip_grad); "
        f"{_last_good(last_saved)}",
        step=step,
        epoch=epoch,
    )


def _save(path, model, optimizer, schedule, epoch: int, step: int, history: list, config) -> str:
    """Write and verify the checkpoint on rank 0, with every rank's random generators; returns
    "path (epoch N)" on every rank (the others name the same file in their messages)."""
    rank_states = distributed.gather_to_main(backend.get_rng_state())
    saved = path
    if distributed.is_main():
        extra = {"history": history, "rank_rng_states": rank_states}
        if config is not None:
            extra["config"] = run_dir.recorded_config(config)
        saved = run_dir.save_verified_checkpoint(path, model, optimizer, schedule, epoch=epoch, step=step, extra=extra)
    return f"{saved} (epoch {epoch})"
