"""A data set of images: fine labels and an optional coarse grouping of the classes.

The one type that :mod:`assd.data.scenarios` turns into forgetting scenarios and
that the loaders (:mod:`assd.data.cifar`, digits) return.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ImageData"]


@dataclass
class ImageData:
    """Images (N, C, H, W) with fine labels and an optional coarse grouping.

    Attributes:
        x_train, y_train, x_test, y_test: images and fine labels.
        class_names: name of each fine class.
        coarse_of: ``coarse_of[fine]`` is the coarse class of a fine class, or None.
        coarse_names: name of each coarse class.
        level: which labels a model learns by default: ``"fine"`` or ``"coarse"``.
        name: the data set's name.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    coarse_of: torch.Tensor | None = None
    coarse_names: list[str] | None = None
    level: str = "fine"
    name: str = ""

    def labels(self, fine: torch.Tensor, level: str) -> torch.Tensor:
        """Fine labels as they are, or mapped to their coarse class."""
        if level == "fine":
            return fine
        if self.coarse_of is None:
            raise ValueError(f"{self.name or 'this data set'} has no coarse classes.")
        return self.coarse_of[fine]

    def names(self, level: str) -> list[str]:
        return self.class_names if level == "fine" else list(self.coarse_names or [])
