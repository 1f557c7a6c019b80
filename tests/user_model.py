"""Factories of networks a user brings (`--model tests/user_model.py:small_cnn`): each takes the number of
classes and returns an nn.Module, as the tests of user models name them."""

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(16 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def small_cnn(num_classes: int) -> nn.Module:
    return SmallCNN(num_classes)


class FixedWidth(SmallCNN):
    """Reads its feature width from a constant, not from the tensor: it runs, but not once pruned."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).reshape(-1, 16 * 4))


def fixed_width(num_classes: int) -> nn.Module:
    return FixedWidth(num_classes)


def colour_only(num_classes: int) -> nn.Module:
    """Made for 3-channel images: its first layer fails on grey ones."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes)
    )


def not_a_network(num_classes: int):
    return [num_classes]
