"""Checks of a model's keywords where they enter its constructor, so that a bad size is one clear
error naming the keyword, not a ZeroDivisionError from deep inside the initialisation."""

from __future__ import annotations

import numbers


def check_positive_ints(model: str, **values) -> None:
    """ValueError naming the first keyword that is not an int >= 1 (a size, a count of heads)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{model}: {name} must be a positive int, got {value!r}")


def check_non_negative_ints(model: str, **values) -> None:
    """ValueError naming the first keyword that is not an int >= 0 (a depth, a number of classes)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{model}: {name} must be an int >= 0, got {value!r}")


def check_positive_numbers(model: str, **values) -> None:
    """ValueError naming the first keyword that is not a finite number > 0 (a ratio)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
            raise ValueError(f"{model}: {name} must be a finite number > 0, got {value!r}")
