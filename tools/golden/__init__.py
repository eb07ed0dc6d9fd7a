"""Dev-only helpers for tools/make_golden.py."""
