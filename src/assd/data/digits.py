"""scikit-learn's 8x8 handwritten digits: real images that ship with the package."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DigitsSplit", "load_digits_split"]


@dataclass
class DigitsSplit:
    """Train and test tensors: images (N, 1, 8, 8) scaled to [0, 1], labels (N,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(*, test_share: float = 0.25, seed: int = 0) -> DigitsSplit:
    """The 1,797 digits, split per class (stratified) with a seed.

    Example:
        >>> split = load_digits_split()
        >>> tuple(split.x_train.shape), len(split.y_test)
        ((1347, 1, 8, 8), 450)
    """
    from sklearn.datasets import load_digits

    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must lie strictly between 0 and 1, got {test_share}.")
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        test[members[: round(test_share * len(members))]] = True
    return DigitsSplit(
        torch.from_numpy(images[~test]),
        torch.from_numpy(labels[~test]),
        torch.from_numpy(images[test]),
        torch.from_numpy(labels[test]),
    )
