"""Settings in the URL: how a widget's value is written into a query parameter and read back from a link.

A link is user text: a value that does not fit the widget is ignored with one plain line that says what
would fit ("ratio=abc ignored: a number from 0 to 95 in steps of 5"), and the widget keeps its default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

TRUE, FALSE = "true", "false"


@dataclass(frozen=True)
class Link:
    """How one widget's value travels in the URL: `write` gives the query parameter's values, `read`
    the widget's value from them, or a ValueError whose text says what would fit."""

    write: Callable[[Any], list[str]]
    read: Callable[[list[str]], Any]
    fits: Callable[[Any], bool]


def link_for(widget: Callable, args: tuple, kwargs: dict) -> Link:
    """The link of a Streamlit widget, from the arguments it is called with (its options or its range)."""
    kind = widget.__name__
    if kind in ("slider", "number_input"):
        return _numbers(kwargs["min_value"], kwargs["max_value"], kwargs.get("step") or 1)
    if kind in ("text_input", "text_area"):  # any text; an empty one is left out of the URL
        return Link(lambda value: [value] if value else [], lambda raw: raw[-1], lambda value: isinstance(value, str))
    if kind in ("toggle", "checkbox"):
        return Link(lambda value: [TRUE if value else FALSE], _switch, lambda value: isinstance(value, bool))
    options = list(args[0] if args else kwargs["options"])
    if kind == "multiselect":
        return _choices(options)
    return _choice(options)  # selectbox, radio, segmented_control, select_slider


def _numbers(low: int | float, high: int | float, step: int | float) -> Link:
    whole = all(isinstance(n, int) for n in (low, high, step))
    expected = f"a number from {low} to {high}" + (f" in steps of {step}" if step != 1 else "")

    def fits(value: Any) -> bool:
        on_grid = abs((value - low) / step - round((value - low) / step)) < 1e-9
        return isinstance(value, int | float) and low <= value <= high and on_grid

    def read(raw: list[str]) -> int | float:
        try:
            value = (int if whole else float)(raw[-1])
        except ValueError:
            raise ValueError(expected) from None
        if not fits(value):
            raise ValueError(expected)
        return value

    return Link(lambda value: [str(value)], read, fits)


def _switch(raw: list[str]) -> bool:
    if raw[-1].lower() not in (TRUE, FALSE):
        raise ValueError(f"{TRUE} or {FALSE}")
    return raw[-1].lower() == TRUE


def _one_of(options: Sequence) -> str:
    names = [str(option) for option in options]
    return "one of " + ", ".join(names) if len(names) <= 12 else f"one of the {len(names)} choices offered"


def _choice(options: list) -> Link:
    by_name = {str(option): option for option in options}

    def read(raw: list[str]) -> Any:
        if raw[-1] not in by_name:
            raise ValueError(_one_of(options))
        return by_name[raw[-1]]

    return Link(lambda value: [str(value)], read, lambda value: value in options)


def _choices(options: list) -> Link:
    """A multiselect: the values that are options are taken; any other one makes the whole link value
    ignored, so the page never opens with half of what the link asked for."""
    by_name = {str(option): option for option in options}

    def read(raw: list[str]) -> list:
        if any(name not in by_name for name in raw):
            raise ValueError(f"each value {_one_of(options)}")
        return list(dict.fromkeys(by_name[name] for name in raw))

    def fits(value: Any) -> bool:
        return isinstance(value, list) and all(item in options for item in value)

    return Link(lambda value: [str(item) for item in value], read, fits)
