"""Search spaces of the settings a method declares (beside its parameters, in its own file): ranges
and choices that ``vsb2net tune`` hands to Optuna.  Declarative only, so that a method's file
states its space without importing the tuner."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Float:
    """A real number in [low, high]; ``log``: sampled on a log scale (weights, learning rates)."""

    low: float
    high: float
    log: bool = False

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high


def LogFloat(low: float, high: float) -> Float:  # noqa: N802 (reads as a type, like Float)
    return Float(low, high, log=True)


@dataclass(frozen=True)
class Int:
    """A whole number in [low, high]."""

    low: int
    high: int
    log: bool = False

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """One of a few values (booleans, named variants)."""

    values: tuple[Any, ...]

    def contains(self, value: Any) -> bool:
        return value in self.values


Space = Float | Int | Choice


def describe(space: Space) -> str:
    """How docs and ``vsb2net methods`` show a space: [0.001, 1] (log), {a, b}."""
    if isinstance(space, Choice):
        return "{" + ", ".join(map(str, space.values)) + "}"
    return f"[{space.low:g}, {space.high:g}]" + (" (log)" if space.log else "")
