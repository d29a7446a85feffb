"""Accuracy of a classifier on batches."""

from __future__ import annotations

import torch
from torch import nn

from ..batches import forward, split_batch, to_device, using_output_fn
from ..contract import check_data, model_errors
from ..parameters import model_device, set_mode

__all__ = ["accuracy", "predict"]


@torch.no_grad()
def predict(
    model: nn.Module, data, *, batch_fn=None, output_fn=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and targets over all batches, with the model in eval mode.

    Raises:
        assd.BatchError: an error raised inside the model, with the batch and the fix.
    """
    check_data(data)
    device = model_device(model)
    preds, targets = [], []
    with set_mode(model, train=False), using_output_fn(output_fn):
        for index, batch in enumerate(data):
            inputs, y = split_batch(batch, batch_fn)
            with model_errors("evaluation", index):
                logits = forward(model, to_device(inputs, device))
            preds.append(logits.argmax(1).cpu())
            targets.append(y.cpu())
    if not preds:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.cat(preds), torch.cat(targets)


def accuracy(model: nn.Module, data, *, batch_fn=None, output_fn=None) -> float:
    """Share of samples whose arg-max prediction equals the target (NaN if empty).

    Example:
        >>> from assd.batches import TensorData
        >>> model = nn.Linear(2, 2, bias=False)
        >>> _ = model.weight.data.copy_(torch.eye(2))
        >>> accuracy(model, TensorData(torch.tensor([[1., 0.], [0., 1.]]), torch.tensor([0, 0])))
        0.5
    """
    pred, y = predict(model, data, batch_fn=batch_fn, output_fn=output_fn)
    return float((pred == y).float().mean()) if len(y) else float("nan")
