"""File formats, arrays and metadata only: scratchvit's own checkpoints (checkpoint.py), safetensors
(safetensors.py), torch .pth without torch (torch_zip.py), .npz (npz.py) and JAX .npz (big_vision.py),
and any of them read into one state_dict (foreign.py), every one read within bounds (files.py: regular
files only, a budget for the bytes a file decodes to). Loading files into models is `scratchvit.models`.
"""

from .checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from .errors import CheckpointError
from .files import write_atomically
from .foreign import read_state_dict, unwrap_state_dict
from .safetensors import read_safetensors, write_safetensors

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "read_checkpoint",
    "read_safetensors",
    "read_state_dict",
    "save_checkpoint",
    "unwrap_state_dict",
    "write_atomically",
    "write_safetensors",
]
