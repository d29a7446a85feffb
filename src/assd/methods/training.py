"""Baselines that train: one base class over the shared loop in ``assd.train``.

A subclass sets ``data_source`` (which loader it trains on) and, if it is not
plain cross-entropy, overrides :meth:`TrainingMethod.objective`.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from ..batches import split_batch
from ..train import cross_entropy, fit
from .registry import register
from .result import UnlearnResult

__all__ = ["FineTune", "Retrain", "TrainingMethod", "gather", "reinitialize_"]


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
        start = time.perf_counter()
        target = model if inplace else copy.deepcopy(model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if self.reinitialize:
                reinitialize_(target, seed=self.seed)
            self.prepare(target, forget=forget, retain=retain)
            self.train_(target, forget=forget, retain=retain)
        target.eval()
        seconds = time.perf_counter() - start
        return UnlearnResult(
            model=target, method=self.name, seconds=seconds, timings={"train": seconds}
        )

    def training_data(self, model: nn.Module, *, forget, retain):
        """Hook: the batches to train on (by default the ``data_source`` loader)."""
        source = retain if self.data_source == "retain" else forget
        if source is None:
            raise ValueError(
                f"{self.name} trains on the {self.data_source} set; pass {self.data_source}=."
            )
        return source

    def train_(self, model: nn.Module, *, forget, retain) -> None:
        """Hook: train ``model`` in place; by default one :func:`assd.train.fit` run of
        :meth:`objective` over :meth:`training_data`."""
        data = self.training_data(model, forget=forget, retain=retain)
        fit(model, data, objective=self.objective, **self.fit_options)


def gather(data, *, batch_fn=None, what: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every ``(inputs, targets)`` batch of ``data`` into two tensors.

    For baselines that re-mix, relabel or subsample the forget and retain sets.

    Example:
        >>> from assd.batches import TensorData
        >>> x, y = gather(TensorData(torch.zeros(5, 2), torch.arange(5), batch_size=2))
        >>> tuple(x.shape), y.tolist()
        ((5, 2), [0, 1, 2, 3, 4])
    """
    inputs, targets = [], []
    for batch in data:
        x, y = split_batch(batch, batch_fn)
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise ValueError(
                f"this method re-mixes the {what} set and needs batches of (input tensor, "
                "target tensor); pass batch_fn= to turn your batches into that."
            )
        inputs.append(x.detach())
        targets.append(y.detach())
    if not inputs:
        raise ValueError(f"the {what} set is empty.")
    return torch.cat(inputs), torch.cat(targets)


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
