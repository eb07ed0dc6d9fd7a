"""Checking the ops: finite-difference gradcheck, the op table that drives it, the per-op profiler."""

from .gradcheck import GradcheckError, gradcheck

__all__ = ["GradcheckError", "gradcheck"]
