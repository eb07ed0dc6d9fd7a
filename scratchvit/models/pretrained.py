"""Models built by name, and weights files loaded into them: `create_model(name, pretrained=path)`,
`load_pretrained` (a weights file of any format into a built model), `load_checkpoint` (scratchvit's
own checkpoint back into a model, rebuilt from its stored name when none is given, and into an
optimizer and schedule) and `convert_checkpoint` (any weights file -> a timm-keyed safetensors file).

Reading the files is scratchvit.io's (the format sniffed from the bytes, the state_dict unwrapped);
the key map of the model's family and the resampling of its position tables are key_maps.py's; the
table of registered names is registry.py's.
"""

from __future__ import annotations

from pathlib import Path

from .. import backend
from ..io import Checkpoint, CheckpointError, read_checkpoint, read_state_dict, write_safetensors
from . import hub
from .key_maps import adapt_state_dict
from .registry import model_entrypoint
from .transfer import prepare_linear_probe
from .vit import VisionTransformer

__all__ = ["convert_checkpoint", "create_model", "load_checkpoint", "load_pretrained"]


def create_model(name: str, pretrained=None, **kwargs):
    """Build a registered model; keyword arguments override its configuration (timm's names).

    pretrained: a path to weights (our checkpoints, safetensors, torch .pth, big_vision .npz), or True
    (or "hub"): the model's weights from the Hugging Face hub or the official MAE files, downloaded once
    into the standard cache (hub.py); `name.tag` picks other weights than the default, as timm does,
    e.g. create_model("mae_vit_large_patch16.visualize_ganloss", pretrained=True).
    """
    base, _, _ = name.partition(".")
    canonical, build = model_entrypoint(base)
    if pretrained is True or pretrained == "hub":
        pretrained = hub.pretrained_file(name)
    model = build(**kwargs)
    model.model_name, model.model_kwargs = canonical, dict(kwargs)
    if pretrained:
        load_pretrained(model, pretrained)
    return model


def load_pretrained(model, path):
    """Load the weights file at `path` into `model` (strictly), whatever its format; returns the model.

    The format is sniffed from the bytes, the state_dict unwrapped, the key map of the model's family
    applied, position tables resampled to the model's sizes (module docstring). A checkpoint of
    another model raises CheckpointError naming the file and every missing, unexpected and wrongly
    shaped key, with a hint where the cause is a common one (num_classes, global_pool, MAE encoder).
    """
    path = Path(path)
    state, source = read_state_dict(path)
    state = adapt_state_dict(state, model, source, path)
    try:
        model.load_state_dict(state, strict=True)
    except ValueError as error:
        hints = "".join(f"\n  hint: {hint}" for hint in _hints(state, model))
        raise CheckpointError(f"{path}: a {source} checkpoint that does not fit this model: {error}{hints}") from error
    return model


def _hints(state: dict, model) -> list:
    """Likely causes of a failed load, in words."""
    hints = []
    targets = model.state_dict()
    for name in ("head.weight", "head.fc.weight"):  # ViT's classifier, Swin's
        if name in targets and name not in state:
            hints.append("the checkpoint has no classifier (e.g. an MAE encoder): build the model with num_classes=0")
        elif name in targets and state[name].ndim and state[name].shape[0] != targets[name].shape[0]:
            classes = state[name].shape[0]
            hints.append(
                f"its classifier has {classes} classes: build the model with num_classes={classes} "
                "(and replace the head afterwards)"
            )
    if "fc_norm.weight" in state and "fc_norm.weight" not in targets:
        hints.append(
            "it normalises after average pooling (fc_norm, as an MAE fine-tuned ViT): build the model "
            "with global_pool='avg'"
        )
    if "norm.weight" in state and "norm.weight" not in targets and "fc_norm.weight" in targets:
        hints.append("it normalises before pooling (norm): build the model with global_pool='token' or fc_norm=False")
    if "decoder_embed.weight" in targets and "decoder_embed.weight" not in state:
        hints.append(
            "the checkpoint holds no MAE decoder (the released mae_pretrain_vit_*.pth hold the encoder "
            "only): load it into a VisionTransformer with num_classes=0"
        )
    return hints


def convert_checkpoint(src, dst, model_name: str, **model_kwargs) -> Path:
    """Read the weights file `src` (any format load_pretrained reads) into create_model(model_name,
    **model_kwargs) and write its state_dict, timm's keys, to the safetensors file `dst` (atomically,
    metadata {"format": "pt"} as timm / the Hugging Face hub write it). Returns dst as a Path.

    E.g. an official Swin .pth, or an AugReg .npz, becomes a file timm's and scratchvit's `pretrained=`
    load as they are.
    """
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"dst must be a .safetensors path, got {str(dst)!r}")
    model = create_model(model_name, pretrained=src, **model_kwargs)
    state = {name: backend.to_numpy(array) for name, array in model.state_dict().items()}
    return write_safetensors(dst, state, metadata={"format": "pt"})


def load_checkpoint(path, model=None, optimizer=None, schedule=None, *, restore_rng: bool = False) -> Checkpoint:
    """Read a checkpoint and put it back: the weights into `model` (rebuilt from the stored name and
    keywords with scratchvit's create_model when None, with the linear-probe head where the weights
    have one), and, when given, the optimizer's state and the schedule's position; with restore_rng,
    the random generators too (for an exact resume).

    Returns the Checkpoint, its `.model` the loaded model. A checkpoint of another model raises
    CheckpointError naming every missing, unexpected and wrongly shaped key.
    """
    checkpoint = read_checkpoint(path)
    path = checkpoint.path
    if model is None:
        if not checkpoint.model_name:
            raise CheckpointError(
                f"{path}: the checkpoint holds no model name (its model, a {checkpoint.model_class}, was not made by "
                "create_model), so it cannot rebuild it: pass model= a model of that architecture"
            )
        try:  # read_checkpoint refused keywords that load a file or outgrow the file's weights
            model = create_model(checkpoint.model_name, **checkpoint.model_kwargs)
        except (TypeError, ValueError, MemoryError) as error:
            raise CheckpointError(f"{path}: cannot rebuild the model {checkpoint.model_name!r}: {error}") from error
        if isinstance(model, VisionTransformer) and "head.1.weight" in checkpoint.state_dict:
            prepare_linear_probe(model)  # a linear probe's head: BatchNorm1d + Linear, the encoder frozen
    try:
        model.load_state_dict(checkpoint.state_dict)
    except ValueError as error:
        stored = checkpoint.model_name or checkpoint.model_class
        raise CheckpointError(
            f"{path}: this checkpoint of {stored} does not fit the {type(model).__name__} given: {error}"
        ) from error
    checkpoint.model = model
    if optimizer is not None:
        if checkpoint.optimizer is None:
            raise CheckpointError(f"{path}: the checkpoint holds no optimizer state")
        try:
            optimizer.load_state_dict(checkpoint.optimizer)
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{path}: its optimizer state does not fit the optimizer given: {error}") from error
    if schedule is not None:
        if checkpoint.schedule is None:
            raise CheckpointError(f"{path}: the checkpoint holds no schedule state")
        schedule.load_state_dict(checkpoint.schedule)
    if restore_rng:
        if checkpoint.rng_state is None:
            raise CheckpointError(f"{path}: the checkpoint holds no random generator state")
        backend.set_rng_state(checkpoint.rng_state)
    return checkpoint
