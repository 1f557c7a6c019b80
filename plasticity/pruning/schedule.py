"""Pruning schedules: how a final ratio is reached, in one cut or in K cuts with fine-tuning between them.

A schedule is written `one-shot`, `iterative:K` or `agp:K`. It gives the share of the final ratio each
of its K cuts reaches (the last always 1): Torch-Pruning's `iterative_steps` raise the ratio in equal
steps; Zhu & Gupta's automated gradual pruning (AGP) follows s_k = s_f (1 - (1 - k/K)^3), steep at first
and gentle near the end, when fewer filters are left to lose. The fine-tuning budget is split evenly
between the cuts, so every schedule spends the same number of optimiser steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from plasticity.errors import InvalidConfigError
from plasticity.registry import Registry

ONE_SHOT = "one-shot"

SHAPES: Registry[Callable[[int, int], float]] = Registry("schedule")
SHAPES.register("iterative")(lambda k, steps: k / steps)
SHAPES.register("agp")(lambda k, steps: 1.0 - (1.0 - k / steps) ** 3)


@dataclass(frozen=True)
class Schedule:
    """A named schedule (`one-shot`, `iterative:K`, `agp:K`) and its K cuts."""

    name: str
    steps: int

    @classmethod
    def parse(cls, text: str) -> Schedule:
        text = str(text).strip()
        if text == ONE_SHOT:
            return cls(ONE_SHOT, 1)
        shape, _, count = text.partition(":")
        if shape not in SHAPES:
            raise InvalidConfigError(
                f"unknown schedule {text!r}; use {ONE_SHOT}, or {', '.join(f'{s}:K' for s in SHAPES.names())}"
            )
        try:
            steps = int(count)
        except ValueError:
            raise InvalidConfigError(f"schedule {text!r} needs its number of cuts, like {shape}:3") from None
        if steps < 2:
            raise InvalidConfigError(f"schedule {text!r} needs at least 2 cuts ({ONE_SHOT} is one)")
        return cls(shape, steps)

    def __str__(self) -> str:
        return self.name if self.name == ONE_SHOT else f"{self.name}:{self.steps}"

    def fractions(self) -> list[float]:
        """The share of the final ratio reached by each cut, in order; the last is 1."""
        if self.name == ONE_SHOT:
            return [1.0]
        return [SHAPES.get(self.name)(k, self.steps) for k in range(1, self.steps + 1)]

    def ratios(self, final: float) -> list[float]:
        """The ratio of the original filters gone after each cut, to reach `final`."""
        return [final * fraction for fraction in self.fractions()]

    def epochs_per_step(self, finetune_epochs: int) -> int:
        """The fine-tuning epochs after each cut: the budget split evenly (it must divide)."""
        if finetune_epochs % self.steps:
            raise InvalidConfigError(
                f"{finetune_epochs} fine-tuning epochs do not split evenly into the {self.steps} cuts of {self}; "
                f"use a multiple of {self.steps}, so every schedule fine-tunes for the same number of steps"
            )
        return finetune_epochs // self.steps


def list_schedules() -> list[str]:
    return [ONE_SHOT, *(f"{shape}:K" for shape in SHAPES.names())]
