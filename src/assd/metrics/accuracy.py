"""Accuracy of a classifier on batches."""

from __future__ import annotations

import torch
from torch import nn

from ..batches import forward, split_batch, to_device
from ..parameters import model_device, set_mode

__all__ = ["accuracy", "predict"]


@torch.no_grad()
def predict(model: nn.Module, data, *, batch_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and targets over all batches, with the model in eval mode."""
    device = model_device(model)
    preds, targets = [], []
    with set_mode(model, train=False):
        for batch in data:
            inputs, y = split_batch(batch, batch_fn)
            preds.append(forward(model, to_device(inputs, device)).argmax(1).cpu())
            targets.append(y.cpu())
    if not preds:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.cat(preds), torch.cat(targets)


def accuracy(model: nn.Module, data, *, batch_fn=None) -> float:
    """Share of samples whose arg-max prediction equals the target (NaN if empty).

    Example:
        >>> from assd.batches import TensorData
        >>> model = nn.Linear(2, 2, bias=False)
        >>> _ = model.weight.data.copy_(torch.eye(2))
        >>> accuracy(model, TensorData(torch.tensor([[1., 0.], [0., 1.]]), torch.tensor([0, 0])))
        0.5
    """
    pred, y = predict(model, data, batch_fn=batch_fn)
    return float((pred == y).float().mean()) if len(y) else float("nan")
