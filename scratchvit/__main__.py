"""`python -m scratchvit`: the `scratchvit` command."""

from .app.cli import run

run()
