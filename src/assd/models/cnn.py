"""A small convolutional network for 8x8 digit images."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitsCNN"]


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and a two-layer head.

    Args:
        n_classes: output classes.
        channels: input channels.
        width: channels of the first convolution (the second has twice as many).

    Example:
        >>> DigitsCNN()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, n_classes: int = 10, *, channels: int = 1, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 4 * 4, 64),  # 8x8 pooled to 4x4
            nn.ReLU(),
            nn.Linear(64, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, 8, 8) -> (B, n_classes)
        return self.head(self.features(x))
