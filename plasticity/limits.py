"""The ranges every run setting must fall in, checked by the configs before anything is computed or stored.

A value outside them is a typo or an attack, not an experiment: a seed past 2**32, a thousand-fold
width, epochs that would train for years, nan or inf as a learning rate. Each check raises an
`InvalidConfigError` whose message names the setting and its range, and quotes the value cut short.
"""

from __future__ import annotations

import math

from plasticity.errors import InvalidConfigError

MAX_EPOCHS = 1000
MAX_SEED = 2**32 - 1
MAX_WIDTH = 16.0  # channel multiplier: 16x LeNet-5 or VGG-16 is already far past what a study needs
MAX_BATCH_SIZE = 65536
MAX_STEPS = 10**7


def check_count(name: str, value: int, low: int, high: int) -> None:
    """A whole number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidConfigError(f"{name} must be a whole number in [{low}, {high}]; got {_shown(value)}")


def check_number(name: str, value: float, low: float, high: float, *, above_low: bool = False) -> None:
    """A finite number in [low, high] (or (low, high] with `above_low`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidConfigError(f"{name} must be a finite number; got {_shown(value)}")
    if value < low or value > high or (above_low and value == low):
        bracket = "(" if above_low else "["
        raise InvalidConfigError(f"{name} must be in {bracket}{low:g}, {high:g}]; got {_shown(value)}")


def check_seed(value: int, name: str = "seed") -> None:
    check_count(name, value, 0, MAX_SEED)


def check_epochs(value: int, name: str = "epochs") -> None:
    check_count(name, value, 0, MAX_EPOCHS)


def check_lr(value: float, name: str = "learning rate") -> None:
    check_number(name, value, 0.0, 1e300, above_low=True)  # finite and positive; a large one diverges, and says so


def check_not_empty(name: str, values: tuple) -> None:
    if not values:
        raise InvalidConfigError(f"{name} is empty: give at least one")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."
