"""What a network costs: MACs and parameters as dense hardware runs it, and its measured latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from plasticity.data import Dataset

CORES = torch.get_num_threads()  # torch's default, read at import (workers lower their own count later)
UNDER_LOAD_SPREAD = 0.15  # a spread (interquartile range) above this share of the median: measured under load


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int
    nonzero_params: int
    latency_ms: float | None  # median forward time of one batch (None: not measured)


@dataclass(frozen=True)
class Latency:
    """One model's forward times in one measurement: the median and the interquartile range, in ms."""

    median: float
    low: float
    high: float

    @property
    def spread(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class Latencies:
    """Several models timed back to back in one measurement, at a stated number of threads."""

    models: dict[str, Latency]
    threads: int

    @property
    def under_load(self) -> bool:
        """Whether the repeats spread so much that something else was computing (then figures are not compared)."""
        return any(latency.spread > UNDER_LOAD_SPREAD * latency.median for latency in self.models.values())


def measure(model: nn.Module, data: Dataset, *, batch: int = 256, repeats: int = 9, latency: bool = True) -> Cost:
    """MACs and parameters as the dense hardware runs them, and the measured latency of a batch."""
    example = data.example_input(1)
    macs, params = tp.utils.count_ops_and_params(model, example)
    nonzero = count_nonzero(model)
    measured = latency_ms(model, data.example_input(batch), repeats) if latency else None
    return Cost(int(macs), int(params), nonzero, measured)


def count_nonzero(model: nn.Module) -> int:
    """The parameters of `model` that are not zero (a masked filter's weights are zeros, not gone)."""
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


def latency_ms(model: nn.Module, inputs: torch.Tensor, repeats: int = 9) -> float:
    """The median forward time of `model` over `inputs`, in ms."""
    return interleaved_latency({"model": model}, inputs, repeats).models["model"].median


@torch.no_grad()
def interleaved_latency(
    models: dict[str, nn.Module],
    inputs: torch.Tensor,
    repeats: int = 9,
    threads: int = CORES,
    between: Callable[[], None] = lambda: None,
) -> Latencies:
    """Every model's forward time over `inputs`, measured back to back: a warm-up each, then `repeats`
    rounds in which each model runs once, the order turning every round, so whatever else loads the
    machine meanwhile falls on all of them alike. Always at `threads` threads (the caller's count is
    restored), so figures taken by a one-thread worker and by the page are alike. `between()` is called
    between rounds, outside the timing (a job gives the cores up there to work that goes first)."""
    states = {name: model.training for name, model in models.items()}
    before = torch.get_num_threads()
    sync = torch.cuda.synchronize if inputs.is_cuda else (lambda: None)
    names = list(models)
    times: dict[str, list[float]] = {name: [] for name in names}
    torch.set_num_threads(threads)
    try:
        for model in models.values():
            model.eval()
            model(inputs)  # warm-up
        for round_ in range(repeats):
            between()
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                sync()
                start = time.perf_counter()
                models[name](inputs)
                sync()
                times[name].append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(before)
        for name, model in models.items():
            model.train(states[name])
    return Latencies({name: _summary(values) for name, values in times.items()}, threads)


def _summary(times: list[float]) -> Latency:
    low, median, high = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
    return Latency(median, low, high)
