"""Value rules for config keys: ranges, finiteness, choices, per-entry rules for lists.

configs/base.py maps dotted keys to rules;
`lib.config.validate` applies them after the type check, so a batch size of 0, a NaN learning
rate or a fraction of 1.5 stops the run at start-up, before anything is written, with a message
that says what the key allows. The type of a key comes from its default, not from its rule.

This module imports nothing of the project, so the declaration files can import it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Rule:
    """`test(value)` is True for an allowed value; `allowed` says what is allowed, in words."""

    allowed: str
    test: Callable[[Any], bool]

    def __call__(self, value: Any) -> bool:
        return bool(self.test(value))

    def __or__(self, other: Rule) -> Rule:
        return Rule(f"{self.allowed}, or {other.allowed}", lambda v: self(v) or other(v))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


finite = Rule("finite", _number)


def at_least(low: float) -> Rule:
    return Rule(f"≥ {low:g}", lambda v: _number(v) and v >= low)


def greater_than(low: float) -> Rule:
    return Rule(f"> {low:g}", lambda v: _number(v) and v > low)


def in_range(low: float, high: float, *, low_open: bool = False, high_open: bool = False
             ) -> Rule:
    """low ≤ v ≤ high, with either end open on request: in_range(0, 1, high_open=True) is [0, 1)."""
    text = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def test(v):
        if not _number(v):
            return False
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        return above and below

    return Rule(f"in {text}", test)


def equal_to(value: Any) -> Rule:
    return Rule(repr(value), lambda v: v == value and type(v) is type(value))


def module_spec(*, optional: bool) -> Rule:
    """A "module.path:Name" reference (optional: '' also allowed)."""
    def test(v):
        if optional and v == "":
            return True
        module, sep, name = v.partition(":")
        return bool(sep and module and name)

    return Rule("'module.path:Name'" + (" or ''" if optional else ""), test)


def each(rule: Rule) -> Rule:
    """A list or tuple whose every entry passes `rule`."""
    return Rule(f"a list of entries each {rule.allowed}", lambda v: all(rule(x) for x in v))


STEPS = at_least(0)  # a step count or cadence; 0 = off / the end
SEED = at_least(0)
FRACTION = in_range(0, 1, high_open=True)
