"""Multilayer perceptrons for tables: the ASSD paper's MLP and two siblings."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TabularMLP"]


class TabularMLP(nn.Module):
    """``depth`` blocks of [Linear(width), BatchNorm1d, ReLU], then Linear(n_classes).

    The paper's error-unlearning model is ``TabularMLP(n_features, 3)`` (3 x 100).

    Example:
        >>> TabularMLP(7, 3)(torch.zeros(4, 7)).shape
        torch.Size([4, 3])
    """

    def __init__(self, n_features: int, n_classes: int, *, width: int = 100, depth: int = 3):
        super().__init__()
        if n_features < 1 or n_classes < 2 or width < 1 or depth < 1:
            raise ValueError(
                f"TabularMLP needs n_features >= 1, n_classes >= 2, width >= 1, depth >= 1; "
                f"got {n_features}, {n_classes}, {width}, {depth}."
            )
        layers: list[nn.Module] = []
        size = n_features
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.BatchNorm1d(width), nn.ReLU()]
            size = width
        layers.append(nn.Linear(size, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_features) -> (B, n_classes)
        return self.net(x)
