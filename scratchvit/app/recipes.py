"""The recipes behind the `scratchvit` commands: train a classifier, pre-train a masked autoencoder,
probe and fine-tune its encoder, evaluate a model, time a training step. Each is one function that
its command calls with the parsed arguments, so every recipe runs from Python as well:

>>> from scratchvit.app import recipes
>>> recipes.train_classifier("vit_tiny_patch16_224", "digits", out_dir="runs/vit", epochs=30,
...                          model_kwargs=dict(patch_size=2, embed_dim=64, depth=4, num_heads=4))
>>> recipes.pretrain_mae("mae_vit_base_patch16", "cifar10", data_root="data/cifar", out_dir="runs/mae")
>>> recipes.fine_tune("runs/mae/checkpoint.npz", "cifar10", data_root="data/cifar", out_dir="runs/ft")
>>> recipes.evaluate_model("cifar10", checkpoint="runs/ft/checkpoint.npz", data_root="data/cifar")

Every training recipe writes into out_dir a checkpoint after every epoch (checkpoint.npz, from
which `load_checkpoint(path).model` rebuilds the model alone) and fit's JSON lines (metrics.jsonl), and
prints where they are. The model takes its classes, channels and image size from the data set
unless model_kwargs say otherwise; images are resized to the model's size and grey images
repeated to its channels when those differ.

Under an MPI launcher (`mpirun -n 4 scratchvit train ...`) the recipes train data-parallel
(scratchvit.train.distributed): batch_size is the global batch, which the ranks split, so N processes
train as one does, only faster; rank 0 prints and writes the files.

The MAE recipes follow He et al. 2022, Appendix A, and the official main_pretrain.py,
main_linprobe.py and main_finetune.py (facebookresearch/mae); their docstrings say where these differ.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import backend
from ..autograd import Tensor
from ..check.profile import profile_ops, synchronize
from ..data import ArrayDataset, DataLoader, DatasetError, ImageFolder, load_dataset
from ..data import transforms as T
from ..io import CheckpointError, read_checkpoint, read_state_dict
from ..io.files import write_atomically
from ..models import create_model, load_checkpoint
from ..models.key_maps import adapt_state_dict
from ..models.mae import MaskedAutoencoderViT
from ..models.transfer import prepare_linear_probe, vit_from_mae
from ..ops.loss import cross_entropy
from ..train import (
    SGD,
    AdamW,
    CosineSchedule,
    OneCycleSchedule,
    distributed,
    evaluate,
    fit,
    masked_autoencoder_loss,
    param_groups_layer_decay,
    param_groups_weight_decay,
)
from ..train.metrics import json_compatible
from ..train.run_dir import CHECKPOINT_NAME, METRICS_NAME, check_resume, guard_run_dir
from .demo import DIGITS_VIT

DEFAULT_OUT = "scratchvit-out"
# What a run's configuration leaves out: where it runs and writes, and how it starts (a resume
# restores every weight, so the weights it started from no longer matter).
NOT_RECORDED = (
    "out_dir",
    "device",
    "data_root",
    "resume",
    "overwrite",
    "allow_config_change",
    "progress",
    "pretrained",
    "checkpoint",
)
SCHEDULES = ("cosine", "onecycle")
WARMUP_FRACTION = 0.1  # the MAE recipes' warmup: 40 of 400 epochs, 10 of 90, 5 of 50


# ---- benchmark workloads ---------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """One model configuration and batch for timing a training step (`scratchvit bench`)."""

    model: str  # a registered model name (timm's / official MAE's)
    batch_size: int
    img_size: int
    in_chans: int = 3
    kwargs: dict = field(default_factory=dict)  # constructor keywords, timm's names
    mask_ratio: float | None = None  # MAE workloads: the forward returns the loss itself

    @property
    def num_classes(self) -> int:
        return self.kwargs.get("num_classes", 1000)


# Names: model, patch, image size, batch.
WORKLOADS = {
    "vit_s16_224_b8": Workload("vit_small_patch16_224", 8, 224),
    "vit_ti16_224_b16": Workload("vit_tiny_patch16_224", 16, 224),
    "swin_t_224_b4": Workload("swin_tiny_patch4_window7_224", 4, 224),
    "mae_b16_224_b8": Workload(
        "mae_vit_base_patch16_dec512d8b", 8, 224, kwargs={"norm_pix_loss": True}, mask_ratio=0.75
    ),
    "vit_c32_b128": Workload(
        "vit_tiny_patch16_224",
        128,
        32,
        kwargs={"img_size": 32, "patch_size": 4, "depth": 6, "num_classes": 10},
    ),
    "vit_digits_b64": Workload("vit_tiny_patch16_224", 64, 8, in_chans=1, kwargs=dict(DIGITS_VIT)),  # the demo's
}


# ---- data -------------------------------------------------------------------------------------
def _image_shape(dataset) -> tuple:
    """(C, H, W) of the data set's first image."""
    if len(dataset) == 0:
        raise DatasetError(f"the data set {dataset!r} holds no images")
    return tuple(int(side) for side in np.shape(dataset[0][0]))


def _size(pair) -> int | tuple:
    """(H, W) -> H when square, else (H, W): the way the model keywords are usually written."""
    return int(pair[0]) if pair[0] == pair[1] else (int(pair[0]), int(pair[1]))


def _data_defaults(dataset) -> dict:
    """The classifier keywords a data set implies: num_classes, in_chans, img_size."""
    channels, height, width = _image_shape(dataset)
    return {"num_classes": len(dataset.classes), "in_chans": channels, "img_size": _size((height, width))}


def _fit_to_model(dataset, model):
    """(dataset, transform): the data set's images made what `model` takes, (in_chans, *img_size).

    An image folder is read at the model's size; grey in-memory images are repeated to the model's
    channels; in-memory images of another size are resized by the returned transform (else None).
    """
    in_chans, img_size = model.patch_embed.in_chans, tuple(model.patch_embed.img_size)
    if isinstance(dataset, ImageFolder) and dataset.image_size != img_size:
        dataset = ImageFolder(dataset.root, image_size=img_size)
    channels, height, width = _image_shape(dataset)
    if channels != in_chans:
        if channels != 1 or not isinstance(dataset, ArrayDataset):
            raise ValueError(f"the data set's images have {channels} channels but the model takes in_chans={in_chans}")
        dataset = ArrayDataset(np.repeat(dataset.images, in_chans, axis=1), dataset.labels, dataset.classes)
    return dataset, (T.Resize(img_size) if (height, width) != img_size else None)


def _loader(dataset, model, batch_size: int, device, *, train: bool = False, seed: int = 0, augment=None):
    """A DataLoader of `dataset` fitted to `model`. train: shuffled, the last partial batch dropped
    (as the official MAE loaders), `augment` (a transform giving the model's size) applied. Under
    MPI it yields this rank's part of every batch."""
    dataset, resize = _fit_to_model(dataset, model)
    loader = DataLoader(
        dataset,
        batch_size,
        shuffle=train,
        seed=seed,
        drop_last=train,
        transform=augment if augment is not None else resize,
        device=device,
        num_replicas=distributed.world_size(),
        rank=distributed.rank(),
    )
    if len(loader) == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the {len(dataset)} training images")
    return loader


def _check_classes(model, dataset) -> None:
    if getattr(model, "num_classes", None) != len(dataset.classes):
        raise ValueError(
            f"the model has {getattr(model, 'num_classes', 'no')} classes but the data set has {len(dataset.classes)}"
        )


def _start(seed: int, device):
    """Join the MPI job when an MPI launcher started this process (one process: nothing changes),
    seed the generators and return the device to compute on.

    Each rank seeds seed + rank, as the official MAE code does, so that dropout masks and MAE
    noise differ between ranks; the model is the same on all, broadcast from rank 0 by fit. The
    ranks on one host take one GPU each (distributed.local_device).
    """
    distributed.init()
    backend.manual_seed(seed + distributed.rank())
    device = distributed.local_device(device)
    if distributed.world_size() > 1 and device is not None:
        backend.set_default_device(device)  # tensors made without a device go to this rank's GPU too
    return device


def _say(message: str) -> None:
    """print on rank 0 only: one line per job, not one per rank."""
    if distributed.is_main():
        print(message)


# ---- models -----------------------------------------------------------------------------------
def _is_mae(model_name: str) -> bool:
    return model_name.startswith("mae_")  # every registered MAE and alias: mae_vit_*


def _load_weights_keeping_new_head(model, path) -> None:
    """Load the weights file `path` (any format load_pretrained reads) into `model`; a classifier
    with another number of classes is left out, so the model keeps its new head (timm's rule for
    pretrained weights built for other classes). Raises CheckpointError for anything else missing."""
    state, source = read_state_dict(path)
    state = adapt_state_dict(state, model, source, path)
    targets = model.state_dict()
    heads = [name for name in ("head.weight", "head.bias", "head.fc.weight", "head.fc.bias") if name in targets]
    dropped = [name for name in heads if name in state and tuple(state[name].shape) != tuple(targets[name].shape)]
    their_classes = int(state[dropped[0]].shape[0]) if dropped else None
    for name in dropped:
        del state[name]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from error
    if set(missing) != set(dropped) or unexpected:
        raise CheckpointError(
            f"{path}: the {source} weights do not fit {type(model).__name__}: missing keys {sorted(missing)}, "
            f"unexpected keys {sorted(unexpected)}"
        )
    if dropped:
        _say(
            f"{path}: loaded all but its {their_classes}-class head; the model has a new {model.num_classes}-class one"
        )


_VIT_NAMES = {
    192: "vit_tiny_patch16_224",
    384: "vit_small_patch16_224",
    768: "vit_base_patch16_224",
    1024: "vit_large_patch16_224",
}


def _load_mae(checkpoint) -> MaskedAutoencoderViT:
    mae = load_checkpoint(checkpoint).model
    if not isinstance(mae, MaskedAutoencoderViT):
        raise ValueError(f"{checkpoint}: holds a {type(mae).__name__}; expected an MAE (from `scratchvit pretrain`)")
    return mae


def _classifier_from_mae(mae: MaskedAutoencoderViT, num_classes: int, global_pool: str, **kwargs):
    """vit_from_mae(mae, ...), named as a registered ViT with every architecture keyword given, so
    that its checkpoints rebuild with create_model (load_checkpoint)."""
    if mae.norm.eps != 1e-6:  # a registered ViT's LayerNorms have timm's eps, 1e-6, as the official MAEs
        raise ValueError(f"the MAE was built with norm_eps={mae.norm.eps}; its classifier needs 1e-6 (timm's ViT)")
    vit = vit_from_mae(mae, num_classes, global_pool=global_pool, **kwargs)
    vit.model_name = _VIT_NAMES.get(vit.embed_dim, "vit_base_patch16_224")
    vit.model_kwargs = {
        **kwargs,
        "img_size": _size(vit.patch_embed.img_size),
        "patch_size": _size(vit.patch_embed.patch_size),
        "in_chans": vit.in_chans,
        "num_classes": num_classes,
        "global_pool": global_pool,
        "embed_dim": vit.embed_dim,
        "depth": len(vit.blocks),
        "num_heads": mae.num_heads,
        "mlp_ratio": mae.mlp_ratio,
    }
    return vit


# ---- schedule and the loop --------------------------------------------------------------------
def make_schedule(
    kind: str, lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: float | None = None, min_lr: float = 0.0
):
    """A per-step schedule over `epochs`. cosine: linear warmup over warmup_epochs (default a tenth
    of the epochs, the MAE recipes' share), then a half cosine down to min_lr. onecycle: PyTorch's
    OneCycleLR peaking at lr after warmup_epochs (default 30% of the steps)."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if warmup_epochs is not None and not 0 <= warmup_epochs < epochs:
        raise ValueError(f"warmup_epochs must be >= 0 and less than epochs {epochs}, got {warmup_epochs}")
    total = epochs * steps_per_epoch
    if kind == "onecycle":
        return OneCycleSchedule(lr, total, pct_start=warmup_epochs / epochs if warmup_epochs else 0.3)
    warmup = WARMUP_FRACTION * epochs if warmup_epochs is None else warmup_epochs
    return CosineSchedule(lr, total, warmup_steps=min(round(warmup * steps_per_epoch), total - 1), min_lr=min_lr)


def _run_config(recipe: str, arguments: dict) -> dict:
    """The settings of a run, recorded in its checkpoint: the recipe's arguments but NOT_RECORDED."""
    return {"recipe": recipe, **{key: value for key, value in arguments.items() if key not in NOT_RECORDED}}


def _base_lr(lr: float | None, blr: float, batch_size: int) -> float:
    """The official MAE rule: lr = blr * batch_size / 256 unless an absolute lr is given."""
    return blr * batch_size / 256 if lr is None else lr


def _run(
    title: str,
    model,
    train_loader,
    optimizer,
    schedule,
    *,
    out_dir,
    epochs: int,
    eval_loader=None,
    loss_fn=None,
    label_smoothing: float = 0.0,
    clip_grad=None,
    resume=None,
    overwrite: bool = False,
    allow_config_change: bool = False,
    config: dict | None = None,
    progress=True,
) -> dict:
    """fit() with the checkpoint and metrics in out_dir; prints what it trains and where it wrote.

    out_dir must not hold another run unless resuming it or told to overwrite it (guard_run_dir);
    `config` is recorded in the checkpoint and a resume is checked against it (fit)."""
    out = Path(out_dir)
    if distributed.is_main() or not overwrite:  # rank 0 deletes; every rank refuses alike
        guard_run_dir(out, resume=resume, overwrite=overwrite)
    if resume is not None:  # refused before anything is said or written (fit checks again as it loads)
        resumed = read_checkpoint(resume)
        if resumed.epoch is not None:
            check_resume(resumed, epochs, config, allow_config_change)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, metrics = out / CHECKPOINT_NAME, out / METRICS_NAME
    trainable = model.num_parameters(trainable_only=True)
    peak_lr = max(group["lr"] for group in optimizer.param_groups)  # the base lr; layer decay scales it down
    ranks = f" x {distributed.world_size()} ranks" if distributed.world_size() > 1 else ""
    _say(
        f"{title}: {getattr(model, 'model_name', type(model).__name__)}, {model.num_parameters():,} parameters "
        f"({trainable:,} trained), {len(train_loader.dataset)} images, {epochs} epoch(s) of {len(train_loader)} "
        f"steps, peak lr {peak_lr:.3g}, on {train_loader.device}{ranks}"
    )
    history = fit(
        model,
        train_loader,
        optimizer,
        epochs=epochs,
        eval_loader=eval_loader,
        loss_fn=loss_fn,
        label_smoothing=label_smoothing,
        schedule=schedule,
        clip_grad=clip_grad,
        checkpoint=checkpoint,
        resume=resume,
        metrics=metrics,
        progress=progress,
        config=config,
        allow_config_change=allow_config_change,
    )
    if history and "eval_acc1" in history[-1]:
        _say(f"test top-1 {history[-1]['eval_acc1']:.2f}%  top-5 {history[-1].get('eval_acc5', float('nan')):.2f}%")
    _say(f"checkpoint: {checkpoint}\nmetrics:    {metrics}")
    return {"checkpoint": checkpoint, "metrics": metrics, "history": history, "model": model}


# ---- the recipes ------------------------------------------------------------------------------
def train_classifier(
    model_name: str,
    data: str = "digits",
    *,
    data_root=None,
    out_dir=DEFAULT_OUT,
    device=None,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    label_smoothing: float = 0.1,
    schedule: str = "cosine",
    warmup_epochs: float | None = None,
    clip_grad: float | None = None,
    resume=None,
    overwrite: bool = False,
    allow_config_change: bool = False,
    pretrained=None,
    model_kwargs: dict | None = None,
    progress: bool = True,
) -> dict:
    """Train a registered classifier (ViT, Swin) from scratch, or from `pretrained` weights, on a
    data set, evaluating on its test split after every epoch.

    AdamW with timm's weight-decay groups (no decay on biases, norms, position embedding, class
    token), cross-entropy with label smoothing, a per-step schedule (make_schedule), optional
    gradient clipping: the DeiT-style recipe without its heavy augmentation. pretrained: a weights
    file of any format scratchvit reads; a head for another number of classes is replaced.
    resume: a checkpoint of this same run to go on from. Returns {"checkpoint", "metrics",
    "history", "model"}.
    """
    config = _run_config("train", locals())
    device = _start(seed, device)
    if _is_mae(model_name):
        raise ValueError(
            f"{model_name} is a masked autoencoder: pre-train it with `scratchvit pretrain`, "
            "then `scratchvit finetune` or `linprobe` its encoder"
        )
    train_set, test_set = load_dataset(data, data_root, "train"), load_dataset(data, data_root, "test")
    model = create_model(model_name, **{**_data_defaults(train_set), **(model_kwargs or {})})
    _check_classes(model, train_set)
    if pretrained is not None:
        _load_weights_keeping_new_head(model, pretrained)
    model.to(backend.get_device(device))
    train_loader = _loader(train_set, model, batch_size, device, train=True, seed=seed)
    test_loader = _loader(test_set, model, batch_size, device)
    optimizer = AdamW(param_groups_weight_decay(model, weight_decay), lr=lr)
    lr_schedule = make_schedule(schedule, lr, epochs, len(train_loader), warmup_epochs)
    return _run(
        "train",
        model,
        train_loader,
        optimizer,
        lr_schedule,
        out_dir=out_dir,
        epochs=epochs,
        eval_loader=test_loader,
        label_smoothing=label_smoothing,
        clip_grad=clip_grad,
        resume=resume,
        overwrite=overwrite,
        allow_config_change=allow_config_change,
        config=config,
        progress=progress,
    )


def pretrain_mae(
    model_name: str = "mae_vit_base_patch16",
    data: str = "digits",
    *,
    data_root=None,
    out_dir=DEFAULT_OUT,
    device=None,
    seed: int = 0,
    epochs: int = 400,
    batch_size: int = 64,
    blr: float = 1.5e-4,
    lr: float | None = None,
    weight_decay: float = 0.05,
    mask_ratio: float = 0.75,
    norm_pix_loss: bool = False,
    warmup_epochs: float | None = None,
    clip_grad: float | None = None,
    resume=None,
    overwrite: bool = False,
    allow_config_change: bool = False,
    model_kwargs: dict | None = None,
    progress: bool = True,
) -> dict:
    """MAE pre-training (He et al. 2022, Sec. 3 and Appendix A.1): AdamW with betas (0.9, 0.95) and
    weight decay 0.05, lr = blr * batch_size / 256 with base lr 1.5e-4, a cosine schedule after a
    linear warmup, mask ratio 0.75, random-resized crops (scale 0.2 to 1) and horizontal flips as
    the only augmentation. norm_pix_loss: the loss on per-patch normalised pixels (Sec. 4 ablation,
    Table 1d). No evaluation during pre-training, as main_pretrain.py. The model takes the data
    set's channels and image size unless model_kwargs say otherwise.
    """
    config = _run_config("pretrain", locals())
    device = _start(seed, device)
    if not _is_mae(model_name):
        raise ValueError(
            f"pretrain trains a masked autoencoder (mae_vit_*), not {model_name}; "
            "train classifiers with `scratchvit train`"
        )
    train_set = load_dataset(data, data_root, "train")
    defaults = _data_defaults(train_set)
    del defaults["num_classes"]
    model = create_model(model_name, **{**defaults, "norm_pix_loss": norm_pix_loss, **(model_kwargs or {})})
    model.to(backend.get_device(device))
    augment = T.Compose([T.RandomResizedCrop(model.patch_embed.img_size, scale=(0.2, 1.0)), T.RandomHorizontalFlip()])
    train_loader = _loader(train_set, model, batch_size, device, train=True, seed=seed, augment=augment)
    lr = _base_lr(lr, blr, batch_size)
    optimizer = AdamW(param_groups_weight_decay(model, weight_decay), lr=lr, betas=(0.9, 0.95))
    lr_schedule = make_schedule("cosine", lr, epochs, len(train_loader), warmup_epochs)
    return _run(
        "pretrain",
        model,
        train_loader,
        optimizer,
        lr_schedule,
        out_dir=out_dir,
        epochs=epochs,
        loss_fn=masked_autoencoder_loss(mask_ratio),
        clip_grad=clip_grad,
        resume=resume,
        overwrite=overwrite,
        allow_config_change=allow_config_change,
        config=config,
        progress=progress,
    )


def linear_probe(
    checkpoint,
    data: str = "digits",
    *,
    data_root=None,
    out_dir=DEFAULT_OUT,
    device=None,
    seed: int = 0,
    epochs: int = 90,
    batch_size: int = 256,
    blr: float = 0.1,
    lr: float | None = None,
    optimizer: str = "sgd",
    weight_decay: float = 0.0,
    warmup_epochs: float | None = None,
    img_size=None,
    resume=None,
    overwrite: bool = False,
    allow_config_change: bool = False,
    progress: bool = True,
) -> dict:
    """Linear probing of a pre-trained MAE encoder (He et al. 2022, Appendix A.2; main_linprobe.py):
    the class token after the encoder's final norm, BatchNorm1d(affine=False) then a linear head
    (prepare_linear_probe), everything else frozen; cross-entropy, lr = blr * batch_size / 256,
    no weight decay, cosine schedule after warmup.

    The paper trains the head with LARS at batch 16,384; this recipe uses SGD with momentum 0.9
    (optimizer="sgd") or AdamW ("adamw") instead, and no augmentation.
    """
    config = _run_config("linprobe", locals())
    device = _start(seed, device)
    if optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
    mae = _load_mae(checkpoint)
    train_set, test_set = load_dataset(data, data_root, "train"), load_dataset(data, data_root, "test")
    extra = {} if img_size is None else {"img_size": img_size}
    model = prepare_linear_probe(_classifier_from_mae(mae, len(train_set.classes), "token", **extra))
    model.to(backend.get_device(device))
    train_loader = _loader(train_set, model, batch_size, device, train=True, seed=seed)
    test_loader = _loader(test_set, model, batch_size, device)
    lr = _base_lr(lr, blr, batch_size)
    head = [parameter for parameter in model.parameters() if parameter.requires_grad]
    head_optimizer = (
        SGD(head, lr=lr, momentum=0.9, weight_decay=weight_decay)
        if optimizer == "sgd"
        else AdamW(head, lr=lr, weight_decay=weight_decay)
    )
    lr_schedule = make_schedule("cosine", lr, epochs, len(train_loader), warmup_epochs)
    return _run(
        "linprobe",
        model,
        train_loader,
        head_optimizer,
        lr_schedule,
        out_dir=out_dir,
        epochs=epochs,
        eval_loader=test_loader,
        resume=resume,
        overwrite=overwrite,
        allow_config_change=allow_config_change,
        config=config,
        progress=progress,
    )


def fine_tune(
    checkpoint,
    data: str = "digits",
    *,
    data_root=None,
    out_dir=DEFAULT_OUT,
    device=None,
    seed: int = 0,
    epochs: int = 50,
    batch_size: int = 64,
    blr: float = 1e-3,
    lr: float | None = None,
    weight_decay: float = 0.05,
    layer_decay: float = 0.75,
    drop_path: float = 0.1,
    label_smoothing: float = 0.1,
    warmup_epochs: float | None = None,
    min_lr: float = 1e-6,
    clip_grad: float | None = None,
    img_size=None,
    resume=None,
    overwrite: bool = False,
    allow_config_change: bool = False,
    progress: bool = True,
) -> dict:
    """End-to-end fine-tuning of a pre-trained MAE encoder (He et al. 2022, Appendix A.3;
    main_finetune.py): the mean of the patch tokens through fc_norm, a new head, every parameter
    trained with AdamW, layer-wise lr decay (param_groups_layer_decay), lr = blr * batch_size / 256,
    weight decay 0.05, drop_path 0.1, label smoothing 0.1, cosine schedule down to min_lr after warmup.

    Not here: the official recipe's RandAugment, mixup, cutmix and random erasing.
    """
    config = _run_config("finetune", locals())
    device = _start(seed, device)
    mae = _load_mae(checkpoint)
    train_set, test_set = load_dataset(data, data_root, "train"), load_dataset(data, data_root, "test")
    extra = {"drop_path_rate": drop_path} | ({} if img_size is None else {"img_size": img_size})
    model = _classifier_from_mae(mae, len(train_set.classes), "avg", **extra)
    model.to(backend.get_device(device))
    train_loader = _loader(train_set, model, batch_size, device, train=True, seed=seed)
    test_loader = _loader(test_set, model, batch_size, device)
    lr = _base_lr(lr, blr, batch_size)
    optimizer = AdamW(param_groups_layer_decay(model, weight_decay, layer_decay), lr=lr)
    lr_schedule = make_schedule("cosine", lr, epochs, len(train_loader), warmup_epochs, min_lr=min_lr)
    return _run(
        "finetune",
        model,
        train_loader,
        optimizer,
        lr_schedule,
        out_dir=out_dir,
        epochs=epochs,
        eval_loader=test_loader,
        label_smoothing=label_smoothing,
        clip_grad=clip_grad,
        resume=resume,
        overwrite=overwrite,
        allow_config_change=allow_config_change,
        config=config,
        progress=progress,
    )


def evaluate_model(
    data: str = "digits",
    *,
    checkpoint=None,
    model_name: str | None = None,
    pretrained=None,
    model_kwargs: dict | None = None,
    data_root=None,
    split: str = "test",
    batch_size: int = 256,
    device=None,
    seed: int = 0,
    out_dir=None,
) -> dict:
    """Top-1 and top-5 accuracy (and the mean cross-entropy) of a classifier on a data split.

    The classifier: checkpoint (one of ours, rebuilt from it alone), or model_name with pretrained
    weights of any format scratchvit reads, built for the data set's classes and image size
    (num_classes, img_size; its position embedding resampled) unless model_kwargs say otherwise.
    Prints one line; with out_dir, writes the numbers to out_dir/eval.json (strict JSON: a NaN
    loss is null). Returns {"loss", "acc1", "acc5", ...}.
    """
    device = _start(seed, device)
    if (checkpoint is None) == (pretrained is None):
        raise ValueError("evaluate a checkpoint of ours, or a model name with pretrained weights: give exactly one")
    if checkpoint is not None:  # the model first: a wrong file is reported before a large data set is read
        model = load_checkpoint(checkpoint).model
        if isinstance(model, MaskedAutoencoderViT):
            raise ValueError(f"{checkpoint}: holds an MAE, not a classifier: linprobe or finetune it first")
        dataset = load_dataset(data, data_root, split)
    else:
        if model_name is None:
            raise ValueError("pretrained weights need the model name they belong to")
        dataset = load_dataset(data, data_root, split)
        sizes = _data_defaults(dataset)  # the weights' position tables are resampled to the data's size
        kwargs = {"num_classes": sizes["num_classes"], "img_size": sizes["img_size"], **(model_kwargs or {})}
        try:
            model = create_model(model_name, pretrained=pretrained, **kwargs)
        except ValueError as error:
            if isinstance(error, CheckpointError) or kwargs["img_size"] != sizes["img_size"]:
                raise
            raise ValueError(
                f"{model_name} at the data set's image size {sizes['img_size']}: {error} (give --img-size or "
                "--patch-size to fit)"
            ) from error
    _check_classes(model, dataset)
    model.to(backend.get_device(device))
    results = evaluate(model, _loader(dataset, model, batch_size, device))
    name = getattr(model, "model_name", type(model).__name__)
    _say(
        f"{name} on {data} {split} ({len(dataset)} images): top-1 {results['acc1']:.2f}%  "
        f"top-5 {results['acc5']:.2f}%  loss {results['loss']:.4f}"
    )
    if out_dir is not None and distributed.is_main():
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        record = {
            "data": data,
            "split": split,
            "images": len(dataset),
            "model": name,
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "pretrained": None if pretrained is None else str(pretrained),
            **results,
        }
        text = json.dumps(json_compatible(record), indent=1, allow_nan=False) + "\n"  # NaN -> null
        write_atomically(Path(out_dir) / "eval.json", lambda file: file.write(text.encode("utf-8")))
    return results


def benchmark(
    workload: str, *, device=None, steps: int = 7, warmup: int = 2, seed: int = 0, profile: bool = False, out_dir=None
) -> dict:
    """Median time of one training step (forward, backward, AdamW update) on a WORKLOADS entry,
    random images and labels, as benchmarks/step.py times scratchvit; prints it with the median
    of each phase. profile: one more step under profile_ops(), and its table of seconds per op
    family and per op, forward and backward. With out_dir, writes the numbers to out_dir/bench.json.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")
    if not (isinstance(steps, int) and steps >= 1) or not (isinstance(warmup, int) and warmup >= 0):
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps {steps!r}, warmup {warmup!r}")
    spec, device = WORKLOADS[workload], backend.get_device(device)
    backend.manual_seed(seed)
    model = create_model(spec.model, **spec.kwargs).to(device)
    optimizer = AdamW(param_groups_weight_decay(model, 0.05), lr=1e-4)
    rng = np.random.default_rng(seed)
    shape = (spec.batch_size, spec.in_chans, spec.img_size, spec.img_size)
    images = Tensor(rng.standard_normal(shape, dtype=np.float32), device=device)
    labels = rng.integers(0, spec.num_classes, spec.batch_size)

    def step() -> dict:
        """One training step; seconds per phase."""
        started = time.perf_counter()
        if spec.mask_ratio is not None:
            loss = model(images, mask_ratio=spec.mask_ratio)[0]
        else:
            loss = cross_entropy(model(images), labels)
        synchronize(device)
        forward_done = time.perf_counter()
        loss.backward()
        synchronize(device)
        backward_done = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        synchronize(device)
        return {
            "forward": forward_done - started,
            "backward": backward_done - forward_done,
            "optimizer": time.perf_counter() - backward_done,
        }

    for _ in range(warmup):
        step()
    timings = [step() for _ in range(steps)]
    totals = [sum(phases.values()) for phases in timings]
    median = statistics.median(totals)
    result = {
        "workload": workload,
        "model": spec.model,
        "batch_size": spec.batch_size,
        "device": str(device),
        "steps": steps,
        "median_s": median,
        "images_per_s": spec.batch_size / median,
        "times_s": totals,
        "phases_s": {phase: statistics.median(t[phase] for t in timings) for phase in timings[0]},
    }
    phases = "  ".join(f"{phase} {1e3 * seconds:.1f} ms" for phase, seconds in result["phases_s"].items())
    print(
        f"{workload}: {spec.model}, batch {spec.batch_size}, on {device}: median step {1e3 * median:.1f} ms "
        f"over {steps} steps ({result['images_per_s']:.1f} images/s; {phases})"
    )
    if profile:
        with profile_ops() as ops:
            profiled = sum(step().values())
        print(
            f"\none step, op by op (profiling adds {'device syncs and ' if device.kind == 'cuda' else ''}"
            f"timer calls: {1e3 * profiled:.1f} ms):"
        )
        print(ops.table(step_seconds=profiled))
        result["profile"] = {"step_s": profiled, "families": ops.by_family(), "ops": ops.by_op()}
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
