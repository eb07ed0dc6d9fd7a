"""Reading and writing weights: scratchvit's own checkpoints (checkpoint.py)."""

from .checkpoint import Checkpoint, load_checkpoint, read_checkpoint, save_checkpoint, write_atomically
from .errors import CheckpointError

__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "read_checkpoint", "save_checkpoint", "write_atomically"]

# foreign weights: torch .pth / safetensors / JAX .npz, timm and official key layouts (convert.py)
from .convert import convert_checkpoint, load_pretrained, read_state_dict  # noqa: E402

__all__ += ["convert_checkpoint", "load_pretrained", "read_state_dict"]
