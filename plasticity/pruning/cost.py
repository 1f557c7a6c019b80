"""What a network costs: MACs and parameters as dense hardware runs it, and its measured latency."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from plasticity.data import Dataset


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int
    nonzero_params: int
    latency_ms: float | None  # median forward time of one batch (None: not measured)


def measure(model: nn.Module, data: Dataset, *, batch: int = 256, repeats: int = 7, latency: bool = True) -> Cost:
    """MACs and parameters as the dense hardware runs them, and the measured latency of a batch."""
    example = data.example_input(1)
    macs, params = tp.utils.count_ops_and_params(model, example)
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    measured = latency_ms(model, data.example_input(batch), repeats) if latency else None
    return Cost(int(macs), int(params), nonzero, measured)


@torch.no_grad()
def latency_ms(model: nn.Module, inputs: torch.Tensor, repeats: int = 7) -> float:
    was_training = model.training
    model.eval()
    sync = torch.cuda.synchronize if inputs.is_cuda else (lambda: None)
    model(inputs)  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        model(inputs)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    model.train(was_training)
    return statistics.median(times)
