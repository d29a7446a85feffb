"""Reference models for ``assd experiment forget``: the original's recipe at a reduced budget.

The benchmark knows how its original was trained (:class:`ForgetConfig`'s
architecture and ``training``), so ``assd-auto`` gets a
:class:`assd.verify.references.Recipe` that trains the same architecture the
same way for ``REFERENCE_BUDGET`` of the epochs, on half of the rows
(:func:`assd.verify.references.build_references`). The budget was measured on
the design cases of docs/evidence.md (``benchmarks/reference_budget.py``).
"""

from __future__ import annotations

import json

import torch

from ..batches import TensorData
from ..models import build_model
from ..train import fit
from ..verify.references import REFERENCE_BUDGET, Recipe
from .forget_setup import Augmented, _wrap, load_weights_, model_spec

__all__ = ["REFERENCE_BUDGET", "benchmark_recipe"]



def benchmark_recipe(config, scenario, device, *, budget: float = REFERENCE_BUDGET) -> Recipe:
    """The original's training recipe at ``budget`` of its epochs (at least one)."""
    if not 0 < budget <= 1:
        raise ValueError(f"the reference budget is a share of the epochs in (0, 1], got {budget}.")
    architecture, kwargs = model_spec(config, scenario)
    training = {**config.training, "epochs": max(1, round(config.training["epochs"] * budget))}

    def train(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        net = build_model(architecture, **kwargs)
        if config.init:
            load_weights_(net, config.init, strict=False, allow_pickle=config.allow_pickle)
        model = _wrap(net, config).to(device)
        rows = TensorData(x.to(device), y.to(device), batch_size=config.batch_size,
                          shuffle=True, seed=seed)  # fmt: skip
        fit(model, Augmented(rows, seed=seed) if config.augment else rows, **training)
        return model.eval()

    spec = {"architecture": architecture, "kwargs": kwargs, "training": training,
            "batch_size": config.batch_size, "augment": config.augment,
            "image_size": config.image_size, "init": config.init}  # fmt: skip
    return Recipe(name=json.dumps(spec, sort_keys=True, default=str), train=train)
