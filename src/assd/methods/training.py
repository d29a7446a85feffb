"""Baselines that train: one base class over the shared loop in ``assd.train``.

A subclass sets ``data_source`` (which loader it trains on) and, if it is not
plain cross-entropy, overrides :meth:`TrainingMethod.objective`.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from ..train import cross_entropy, fit
from .registry import register
from .result import UnlearnResult

__all__ = ["FineTune", "Retrain", "TrainingMethod", "reinitialize_"]


def reinitialize_(model: nn.Module, *, seed: int) -> nn.Module:
    """Re-draw every parameter with its module's own initialiser, seeded; returns ``model``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            for reset in ("reset_parameters", "_reset_parameters"):
                if callable(getattr(module, reset, None)):
                    getattr(module, reset)()
                    break
    return model


class TrainingMethod:
    """Copy the model (or not), optionally re-initialise it, then train it.

    Args:
        epochs: passes over the training data.
        lr: learning rate.
        optimizer: ``"sgd"`` or ``"adam"``.
        momentum, weight_decay, lr_gamma: as in :func:`assd.train.fit`.
        seed: seeds the re-initialisation and any randomness of the objective.
        batch_fn: ``batch_fn(batch) -> (inputs, targets)`` for unusual batches.
    """

    data_source = "retain"  # "retain" or "forget": which loader ``unlearn`` trains on
    reinitialize = False

    def __init__(
        self,
        *,
        epochs: int = 5,
        lr: float = 0.02,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr_gamma: float = 1.0,
        seed: int = 0,
        batch_fn=None,
    ):
        if epochs < 0 or lr <= 0:
            raise ValueError(f"epochs must be >= 0 and lr > 0, got epochs={epochs}, lr={lr}.")
        self.fit_options = dict(
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            momentum=momentum,
            weight_decay=weight_decay,
            lr_gamma=lr_gamma,
            batch_fn=batch_fn,
        )
        self.seed = seed

    def objective(self, model: nn.Module, inputs, targets) -> torch.Tensor:
        """The loss minimised per batch; cross-entropy unless overridden."""
        return cross_entropy(model, inputs, targets)

    def prepare(self, model: nn.Module, *, forget, retain) -> None:
        """Hook run on the working copy before training (e.g. to build a teacher)."""

    def unlearn(
        self,
        model: nn.Module,
        *,
        forget,
        retain=None,
        data=None,
        importance=None,
        n_data: int | None = None,
        inplace: bool = False,
    ) -> UnlearnResult:
        """Train a copy of ``model`` (``model`` itself if ``inplace``) and return it.

        ``data``, ``importance`` and ``n_data`` are accepted for a uniform call
        across methods and ignored.
        """
        source = retain if self.data_source == "retain" else forget
        if source is None:
            raise ValueError(
                f"{self.name} trains on the {self.data_source} set; pass {self.data_source}=."
            )
        start = time.perf_counter()
        target = model if inplace else copy.deepcopy(model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if self.reinitialize:
                reinitialize_(target, seed=self.seed)
            self.prepare(target, forget=forget, retain=retain)
            fit(target, source, objective=self.objective, **self.fit_options)
        seconds = time.perf_counter() - start
        return UnlearnResult(
            model=target, method=self.name, seconds=seconds, timings={"train": seconds}
        )


@register("retrain")
class Retrain(TrainingMethod):
    """Retrain from scratch on the retain set: the gold standard unlearning aims at."""

    reinitialize = True

    def __init__(self, *, epochs: int = 30, lr: float = 0.01, **options):
        super().__init__(epochs=epochs, lr=lr, **options)


@register("finetune")
class FineTune(TrainingMethod):
    """Fine-tune on the retain set (SSD protocol: 5 epochs, lr 0.02), relying on
    catastrophic forgetting of what is not seen again."""
