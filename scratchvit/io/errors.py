"""The errors of scratchvit.io, shared by every reader and writer in the package."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A weights or checkpoint file that cannot be used: empty, truncated, not a checkpoint,
    of another model, or holding an unknown dtype. The message names the file and what is wrong."""
