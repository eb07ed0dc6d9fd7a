"""The model families (ViT, MAE, Swin), position embeddings, the model registry, and weights files
loaded into models (pretrained.py, with each family's key map in key_maps.py).

>>> model = sv.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=4)
>>> sv.list_models("vit_*")
"""

from . import mae, swin, vit  # noqa: F401  (importing a model file registers its configurations)
from .pretrained import convert_checkpoint, create_model, load_checkpoint, load_pretrained
from .registry import list_models, register_alias, register_model
from .summary import Summary, summarize
from .vit import VisionTransformer

__all__ = [
    "Summary",
    "VisionTransformer",
    "convert_checkpoint",
    "create_model",
    "list_models",
    "load_checkpoint",
    "load_pretrained",
    "register_alias",
    "register_model",
    "summarize",
]
