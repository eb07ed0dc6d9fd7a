"""The model families (ViT, MAE, Swin), position embeddings and the model registry.

>>> model = sv.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=4)
>>> sv.list_models("vit_*")
"""

from .registry import create_model, list_models, register_alias, register_model
from .summary import Summary, summarize
from .vit import VisionTransformer

__all__ = ["Summary", "VisionTransformer", "create_model", "list_models", "register_alias", "register_model",
           "summarize"]  # fmt: skip
