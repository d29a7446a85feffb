"""Baselines that train: one base class over the shared loop in ``assd.train``.

A subclass sets ``data_source`` (which loader it trains on) and, if it is not
plain cross-entropy, overrides :meth:`TrainingMethod.objective`. Every method
takes the batches ``unlearn`` takes (:mod:`assd.batches`): the ones that re-mix
or relabel rows do it row by row for plain tensor inputs, and whole batch by
whole batch for any other input (dicts, tuples of tensors, padded text).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from ..batches import TensorData, forward, split_batch
from ..contract import check_data
from ..tasks import default_loss
from ..train import cross_entropy, fit
from ..verify.outcome import Outcome, evaluation_sets, layer_changes, score_sets, snapshot
from .registry import register
from .result import UnlearnResult

__all__ = [
    "BatchList",
    "FineTune",
    "Retrain",
    "TrainingMethod",
    "collect",
    "gather",
    "reinitialize_",
    "remix",
    "require_both",
    "tensor_rows",
]


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
        output_fn: ``output_fn(model_output) -> logits`` (see :mod:`assd.batches`).
        task: what the outputs mean (:mod:`assd.tasks`); it fixes the loss.
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
        output_fn=None,
        task: str | None = None,
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
            output_fn=output_fn,
        )
        self.seed = seed
        self.task = task
        self.task_loss = default_loss(task)  # None: cross-entropy over (rows, classes)

    def loss(self, model: nn.Module, inputs, targets) -> torch.Tensor:
        """The task's loss of a batch (:mod:`assd.tasks`; cross-entropy by default)."""
        if self.task_loss is None:
            return cross_entropy(model, inputs, targets)
        return self.task_loss(forward(model, inputs), targets)

    def objective(self, model: nn.Module, inputs, targets) -> torch.Tensor:
        """The loss minimised per batch; the task's loss unless overridden."""
        return self.loss(model, inputs, targets)

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
        evaluate: dict | None = None,
    ) -> UnlearnResult:
        """Train a copy of ``model`` (``model`` itself if ``inplace``) and return it.

        ``data``, ``importance`` and ``n_data`` are accepted for a uniform call
        across methods and ignored. ``evaluate``: ``{name: batches}`` scored before and
        after with the forget rows (and ``retain``, unless named there), as the SSD family
        does; the result then carries the outcome and its verdict (no guard: a baseline is
        run as asked).
        """
        start = time.perf_counter()
        if evaluate is not None and retain is not None and "retain" not in evaluate:
            evaluate = {**evaluate, "retain": retain}  # the rows kept are scored too
        scored = self._score_before(model, forget, evaluate) if evaluate is not None else None
        target = model if inplace else copy.deepcopy(model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if self.reinitialize:
                reinitialize_(target, seed=self.seed)
            self.prepare(target, forget=forget, retain=retain)
            self.train_(target, forget=forget, retain=retain)
        target.eval()
        seconds = time.perf_counter() - start
        outcome = None
        if scored is not None:
            sets, before, original, options = scored
            outcome = Outcome(before=before, after=score_sets(target, sets, **options),
                              layers=layer_changes(original, target))  # fmt: skip
        return UnlearnResult(
            model=target, method=self.name, seconds=seconds, timings={"train": seconds},
            outcome=outcome,
        )

    def _score_before(self, model: nn.Module, forget, evaluate: dict):
        """The evaluation sets, their scores on ``model`` and its weights, before training."""
        batch_fn = self.fit_options["batch_fn"]
        sets = evaluation_sets(evaluate, forget, batch_fn=batch_fn)
        options = {"batch_fn": batch_fn, "output_fn": self.fit_options["output_fn"],
                   "task": self.task}  # fmt: skip
        original = snapshot(dict(model.named_parameters()))
        return sets, score_sets(model, sets, **options), original, options

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
        label = f"the {self.data_source} set ({self.data_source}=)"
        fit(model, data, objective=self.objective, label=label, **self.fit_options)


def require_both(method, forget, retain) -> None:
    """Refuse a call without ``forget=`` or ``retain=``, for methods that train on both."""
    if forget is None or retain is None:
        raise ValueError(f"{method.name} trains on both sets; pass forget= and retain=.")


def collect(data, *, batch_fn=None, what: str = "data") -> list[tuple[Any, Any]]:
    """Every batch of ``data`` as ``(inputs, targets)``, detached, in order.

    Raises:
        ValueError: for an empty set, or batches without targets.
    """
    check_data(data, what=f"the {what} set")
    batches = []
    for batch in data:
        x, y = split_batch(batch, batch_fn)
        if not isinstance(y, torch.Tensor):
            raise ValueError(
                f"this method needs targets in the {what} set's batches; pass labelled "
                "batches (see assd.batches), or batch_fn= to say where the target is."
            )
        batches.append((_detach(x), y.detach()))
    if not batches:
        raise ValueError(f"the {what} set is empty.")
    return batches


def tensor_rows(batches: list[tuple[Any, Any]]) -> bool:
    """Whether the batches can be re-mixed row by row: one input tensor of one row shape."""
    shapes = {x.shape[1:] if isinstance(x, torch.Tensor) else None for x, _ in batches}
    return None not in shapes and len(shapes) == 1


def gather(data, *, batch_fn=None, what: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every ``(inputs, targets)`` batch of ``data`` into two tensors.

    For baselines that re-mix, relabel or subsample rows of tensor data.

    Example:
        >>> from assd.batches import TensorData
        >>> x, y = gather(TensorData(torch.zeros(5, 2), torch.arange(5), batch_size=2))
        >>> tuple(x.shape), y.tolist()
        ((5, 2), [0, 1, 2, 3, 4])
    """
    batches = collect(data, batch_fn=batch_fn, what=what)
    if not tensor_rows(batches):
        raise ValueError(
            f"the {what} set's inputs are not one tensor of one row shape; use collect() "
            "and remix(), which keep such batches whole."
        )
    return _cat(batches)


def remix(parts: list[list[tuple[Any, Any]]], *, batch_size: int, seed: int):
    """One shuffled training set from several lists of batches.

    Tensor rows are shuffled row by row into batches of ``batch_size``
    (:class:`~assd.TensorData`); other batches are kept whole and their order
    is shuffled on each pass (:class:`BatchList`).
    """
    batches = [b for part in parts for b in part]
    if tensor_rows(batches):
        x, y = _cat(batches)
        return TensorData(x, y, batch_size=batch_size, shuffle=True, seed=seed)
    return BatchList(batches, shuffle=True, seed=seed)


class BatchList:
    """Whole batches ``(inputs, targets)`` in memory; with ``shuffle``, a new seeded
    order on every pass (pass k uses a generator seeded ``seed + k``)."""

    def __init__(self, batches: list[tuple[Any, Any]], *, shuffle: bool = False, seed: int = 0):
        self.batches, self.shuffle, self.seed, self._passes = list(batches), shuffle, seed, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        order = range(len(self.batches))
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self._passes)
            order = torch.randperm(len(self.batches), generator=generator).tolist()
            self._passes += 1
        return (self.batches[i] for i in order)


def _cat(batches: list[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    device = batches[0][0].device
    x = torch.cat([b[0].to(device) for b in batches])
    return x, torch.cat([b[1].to(device) for b in batches])


def _detach(tree: Any) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, tree)


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
