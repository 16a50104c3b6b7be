"""Field declarations that carry their own check: `lr: float = positive(0.001)`.

Each helper returns a dataclass field with its default and, in its metadata, the check that
`validate` runs on the composed value; a check returns what is wrong ("must be > 0") or None.
OmegaConf checks the types while Hydra composes; these are the checks a type cannot express.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any, Callable

Check = Callable[[Any], "str | None"]
SWITCHES = ("auto", "true", "false")  # an on/off option that dlx can decide (auto)


def checked(default: Any, check: Check | None = None):
    """A field with `default` (lists are copied per instance) and `check`."""
    metadata = {"check": check} if check else {}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def check_of(f) -> Check | None:
    """The check declared on a dataclass field, if any."""
    return f.metadata.get("check")


def _number(test: Callable[[float], bool], problem: str) -> Check:
    return lambda v: None if test(v) else problem


def positive(default):
    return checked(default, _number(lambda v: v > 0, "must be > 0"))


def non_negative(default):
    return checked(default, _number(lambda v: v >= 0, "must be >= 0"))


def off_or_positive(default):
    """0 switches the feature off."""
    return checked(default, _number(lambda v: v >= 0, "must be >= 0 (0: off)"))


def at_least(default, low, why: str = ""):
    return checked(default, _number(lambda v: v >= low, f"must be >= {low}{why}"))


def fraction(default, low_open: bool = True):
    """In (0, 1), or [0, 1) with low_open=False."""
    if low_open:
        return checked(default, _number(lambda v: 0 < v < 1, "must be between 0 and 1 (exclusive)"))
    return checked(default, _number(lambda v: 0 <= v < 1, "must be in [0, 1)"))


def seed(default):
    return checked(default, _number(lambda v: 0 <= v < 2**32,
                                    "must be in [0, 2**32) (numpy and torch seeds)"))


def one_of(default, *values):
    """A fixed set of values (strings, or `true`/`false`/`auto` switches)."""
    allowed = values or (default,)

    def check(v):  # exact, as the code that reads the value compares it; only true/false come
        got = str(v).lower() if str(v).lower() in ("true", "false") else str(v)  # as True/False
        return None if got in [str(a) for a in allowed] else \
            f"is not one of {', '.join(map(str, allowed))}"
    return checked(default, check)


def sizes(default, what: str = "sizes"):
    """A list of sizes > 0."""
    return checked(default, lambda v: None if all(x > 0 for x in v) else f"must hold {what} > 0")


def path(default):
    """A file or folder: `dlx train` quotes such a value for Hydra when it holds characters
    Hydra's override grammar refuses (dataset.root=数据/mnist, ~/My Data)."""
    return field(default=default, metadata={"path": True})


def matches(default, test: Callable[[Any], bool], problem: str):
    return checked(default, lambda v: None if test(v) else problem)


def problems_of(value: Any, check: Check | None) -> str | None:
    """What is wrong with `value`: not finite (nan passes every range check), or its check."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if check is None or value is None:
        return None
    return check(value)
