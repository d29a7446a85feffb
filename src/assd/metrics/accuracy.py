"""Accuracy of a model on batches, under its task (:mod:`assd.tasks`): rows for a
classifier, labelled tokens for a token tagger, next tokens for a causal LM."""

from __future__ import annotations

import torch
from torch import nn

from ..batches import forward, split_batch, to_device, using_output_fn
from ..contract import check_data, model_errors
from ..parameters import model_device, set_mode
from ..tasks import resolve_task, row_figures

__all__ = ["accuracy", "predict"]


@torch.no_grad()
def predict(
    model: nn.Module, data, *, batch_fn=None, output_fn=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and targets over all batches (one class per row), in eval mode.

    Raises:
        assd.BatchError: an error raised inside the model, with the batch and the fix.
        ValueError: outputs that are not one row of class scores per target
            (sequences: use :func:`accuracy` with ``task=``).
    """
    preds, targets = [], []
    for logits, y in _outputs(model, data, batch_fn, output_fn):
        if resolve_task(None, logits, y) != "classification":  # raises for sequences
            raise ValueError("predict() gives one class per row; these are regression targets.")
        preds.append(logits.argmax(-1).cpu())
        targets.append(y.cpu())
    if not preds:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.cat(preds), torch.cat(targets)


def _outputs(model: nn.Module, data, batch_fn, output_fn):
    """``(logits, targets)`` per batch, the model in eval mode."""
    check_data(data)
    device = model_device(model)
    with set_mode(model, train=False), using_output_fn(output_fn):
        for index, batch in enumerate(data):
            inputs, y = split_batch(batch, batch_fn)
            if y is None:
                raise ValueError(f"batch {index} has no targets; accuracy needs labelled rows.")
            with model_errors("evaluation", index):
                logits = forward(model, to_device(inputs, device))
            yield logits, y.to(logits.device)


@torch.no_grad()
def accuracy(model: nn.Module, data, *, batch_fn=None, output_fn=None,
             task: str | None = None) -> float:  # fmt: skip
    """Share of counted predictions that are right (NaN if none): rows for
    classification, non-ignored positions for token classification and causal LMs.

    ``task`` (:mod:`assd.tasks`) is inferred from the shapes where only one fits;
    sequence outputs need it named.

    Example:
        >>> from assd.batches import TensorData
        >>> model = nn.Linear(2, 2, bias=False)
        >>> _ = model.weight.data.copy_(torch.eye(2))
        >>> accuracy(model, TensorData(torch.tensor([[1., 0.], [0., 1.]]), torch.tensor([0, 0])))
        0.5
    """
    correct = counted = 0.0
    for logits, y in _outputs(model, data, batch_fn, output_fn):
        task = resolve_task(task, logits, y)
        if task == "regression":
            raise ValueError("accuracy needs class targets; these are regression targets.")
        figures = row_figures(task, logits, y)
        correct += float(figures.correct.sum())
        counted += float(figures.counted.sum())
    return correct / counted if counted else float("nan")
