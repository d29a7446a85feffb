"""One training loop for training, retraining and fine-tuning (and the baselines)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .batches import forward, split_batch, to_device, using_output_fn
from .contract import check_data, check_targets, model_errors
from .parameters import model_device
from .tasks import infer_task

__all__ = ["fit", "seed_everything"]

log = logging.getLogger("assd")

Objective = Callable[[nn.Module, Any, Any], torch.Tensor]


def seed_everything(seed: int) -> None:
    """Seed PyTorch's global generator (CPU and CUDA) and pick deterministic kernels."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def cross_entropy(model: nn.Module, inputs: Any, targets: Any) -> torch.Tensor:
    """The default objective: mean cross-entropy of the model's logits (targets checked)."""
    logits = forward(model, inputs)
    if logits.dim() > 2 and isinstance(targets, torch.Tensor):  # never the wrong axis
        infer_task(logits, targets)  # raises: name the task (assd.tasks)
    width = logits.shape[1] if logits.dim() >= 2 else None
    check_targets(targets, n_rows=logits.shape[0], n_classes=width)
    return F.cross_entropy(logits, targets)


def fit(
    model: nn.Module,
    data,
    *,
    epochs: int,
    lr: float,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    lr_gamma: float = 1.0,
    objective: Objective = cross_entropy,
    batch_fn=None,
    output_fn=None,
    progress: bool = False,
    label: str = "the training data",
) -> nn.Module:
    """Train ``model`` in place on ``data`` and return it.

    Args:
        model: the model to train (modified in place).
        data: an iterable of batches; shuffle it yourself (``TensorData(shuffle=True)``).
        epochs: passes over the data.
        lr: learning rate.
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        weight_decay: L2 penalty.
        lr_gamma: multiply the learning rate by this after every epoch (StepLR).
        objective: ``objective(model, inputs, targets) -> loss``; cross-entropy by default.
        batch_fn: ``batch_fn(batch) -> (inputs, targets)`` for unusual batches.
        output_fn: ``output_fn(model_output) -> logits`` (see :mod:`assd.batches`).
        progress: show a progress bar over epochs.
        label: what ``data`` is called in error messages.

    Raises:
        assd.BatchError: an error raised inside the model, with the epoch, the
            batch and the likely fix.
    """
    check_data(data, what=label, every_row=False)  # training may drop a last partial batch
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose 'sgd' or 'adam'.")
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=lr_gamma)
    device = model_device(model)
    model.train()
    with using_output_fn(output_fn):
        for epoch in _epochs(epochs, progress):
            for index, batch in enumerate(data):
                inputs, targets = split_batch(batch, batch_fn)
                with model_errors(f"training on {label}, epoch {epoch}", index):
                    loss = objective(model, to_device(inputs, device), to_device(targets, device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                opt.step()
            schedule.step()
    model.eval()
    return model


def _epochs(epochs: int, progress: bool):
    if not progress:
        return range(epochs)
    from tqdm.auto import trange

    return trange(epochs, desc="training", leave=False, disable=None)  # off unless a TTY
