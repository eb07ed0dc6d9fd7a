"""The application: the `scratchvit` command (cli.py), its recipes, the demo and the figures."""
