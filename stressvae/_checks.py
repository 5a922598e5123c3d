"""Argument checks shared by the modules: each says which argument is wrong
and what was expected. A leaf module: it imports nothing from stressvae."""

from __future__ import annotations

import math
import operator
from typing import Any


def as_int(
    name: str, value: Any, lo: int, hi: int | None = None, *, error: type = ValueError
) -> int:
    """``value`` as a Python int in [lo, hi] (no bools, no floats such as 3.0).
    Raises ``error`` (a ValueError subclass) whose message names ``name``."""
    if isinstance(value, bool):
        raise error(f"{name} must be an integer, got a bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise error(f"{name} must be an integer, got {value!r}") from None
    if hi is None:
        if v < lo:
            raise error(f"{name} must be an integer >= {lo}, got {v}")
    elif not lo <= v <= hi:
        raise error(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def as_float(
    name: str, value: Any, lo: float | None = None, *, strict: bool = False,
    error: type = ValueError,
) -> float:  # fmt: skip
    """``value`` as a finite float (>= lo, or > lo when ``strict``)."""
    if isinstance(value, bool):
        raise error(f"{name} must be a number, got a bool")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise error(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise error(f"{name} must be finite, got {v}")
    if lo is not None and (v <= lo if strict else v < lo):
        raise error(f"{name} must be {'>' if strict else '>='} {lo}, got {v}")
    return v
