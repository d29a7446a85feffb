"""Reference models for a table model: its own training recipe at a reduced budget.

A table model knows how it was trained (:class:`assd.tabular.model.TrainConfig`),
so ``assd-auto`` on a table judges its result against models trained the same
way, for ``budget`` of the epochs, on halves of the rows
(:mod:`assd.verify.references`).

Example:
    >>> from assd.tabular.model import TrainConfig
    >>> recipe = table_recipe(TrainConfig(epochs=20, batch_size=8), n_classes=2, budget=0.5)
    >>> '"epochs": 10' in recipe.name
    True
"""

from __future__ import annotations

import dataclasses
import json

import torch

from ..models import build_model
from ..verify.references import REFERENCE_BUDGET, Recipe
from .model import TrainConfig, train_mlp

__all__ = ["table_recipe"]


def table_recipe(config: TrainConfig, *, n_classes: int, n_features: int | None = None,
                 budget: float = REFERENCE_BUDGET) -> Recipe:  # fmt: skip
    """``config``'s training at ``budget`` of its epochs (at least one), seeded per reference.
    With ``n_features`` the recipe can build a blank model, so a folder cache can keep the
    references on disk (:class:`assd.verify.references.ReferenceCache`)."""
    if not 0 < budget <= 1:
        raise ValueError(f"the reference budget is a share of the epochs in (0, 1], got {budget}.")
    if config.epochs is None:
        raise ValueError("the table model's epochs are not known; train it with assd train.")
    reduced = dataclasses.replace(config, epochs=max(1, round(config.epochs * budget)))

    def train(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.nn.Module:
        own = dataclasses.replace(reduced, seed=seed)
        return train_mlp(x, y, n_classes=n_classes, config=own)

    def blank() -> torch.nn.Module:
        return build_model(config.model, n_features=n_features, n_classes=n_classes)

    spec = {k: v for k, v in dataclasses.asdict(reduced).items() if k != "seed"}
    return Recipe(name=json.dumps({"table": spec, "n_classes": n_classes}, sort_keys=True),
                  train=train, blank=None if n_features is None else blank)  # fmt: skip
