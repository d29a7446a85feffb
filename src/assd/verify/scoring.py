"""Scoring one model on one evaluation set under its task (:mod:`assd.tasks`).

:func:`score_rows` runs forward passes over a set's batches and returns the
fields of a :class:`~assd.verify.outcome.SetScore`:

- ``accuracy``: right arg-max predictions over counted predictions: rows for
  classification, labelled tokens for token classification, next tokens for a
  causal LM (None for regression);
- ``loss``: the mean loss per counted prediction (per token for sequence
  tasks), or per row under a user's ``loss_fn``;
- ``perplexity`` (causal LM): ``exp(loss)``;
- ``extraction`` (causal LM): the share of rows that greedy decoding from
  their prefix reproduces exactly (see :mod:`assd.tasks`);
- ``metric``: the mean over rows of a user's ``metric_fn(logits, targets)``;
- ``row_losses``: each row's own mean loss, for targets that compare
  distributions (forget rows against never-seen rows).

Example:
    >>> import torch
    >>> from assd.batches import TensorData
    >>> model = torch.nn.Linear(2, 2, bias=False)
    >>> _ = model.weight.data.copy_(torch.eye(2))
    >>> data = TensorData(torch.tensor([[1., 0.], [0., 1.]]), torch.tensor([0, 0]))
    >>> score_rows(model, data, "retain")["accuracy"]
    0.5
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..batches import forward, split_batch, to_device
from ..contract import BatchError, model_errors
from ..tasks import resolve_task, row_figures

__all__ = ["probe_task", "score_rows"]


class _Tally:
    """Running sums over a set's batches."""

    def __init__(self):
        self.rows, self.loss, self.counted, self.correct, self.exact = 0, 0.0, 0.0, 0.0, 0
        self.metric, self.confusion, self.row_losses, self.positions = 0.0, None, [], 0.0

    def add(self, task: str, out, y, loss_fn, metric_fn) -> None:
        figures = row_figures(task, out, y)
        rows = len(y)
        if loss_fn is not None:  # the user's loss, per row
            losses = loss_fn(out, y)
            losses = losses if losses.dim() else losses.expand(rows)
            self.loss += float(losses.double().sum())
            self.counted += rows
            self.row_losses.append(losses.detach().double().cpu())
        else:
            self.loss += float(figures.loss.double().sum())
            self.counted += float(figures.counted.double().sum())
            mean = figures.loss.double() / figures.counted.double().clamp(min=1)
            self.row_losses.append(mean.cpu())
        if figures.correct is not None:
            self.correct += float(figures.correct.double().sum())
            self.exact += int(figures.exact.sum())
            self.positions += float(figures.counted.sum())
        if figures.pred is not None:
            self.confusion = _count_pairs(self.confusion, y, figures.pred, out.shape[-1])
        if metric_fn is not None:
            values = torch.as_tensor(metric_fn(out, y), dtype=torch.float64)
            self.metric += float(values.sum()) if values.dim() else float(values) * rows
        self.rows += rows

    def merge(self, other: _Tally) -> None:
        """Add ``other``'s sums (one batch's, from another process) as :meth:`add` would
        have: each sum of a one-batch tally is the batch's own figure (``0.0 + x == x``),
        so merging batches in their order gives one process's sums bit for bit."""
        self.rows += other.rows
        self.loss += other.loss
        self.counted += other.counted
        self.correct += other.correct
        self.exact += other.exact
        self.positions += other.positions
        self.metric += other.metric
        self.row_losses += other.row_losses
        if other.confusion is not None:  # as _count_pairs adds one batch's pairs
            self.confusion = _add_counts(self.confusion, other.confusion)

    def fields(self, task: str, metric: bool) -> dict:
        loss = self.loss / self.counted if self.counted else 0.0
        positions = self.positions
        classes = task != "regression"
        return {
            "n": self.rows,
            "accuracy": (self.correct / positions if positions else math.nan) if classes else None,
            "loss": loss,
            "confusion": self.confusion,
            "task": task,
            "perplexity": math.exp(min(loss, 700.0)) if task == "causal-lm" else None,
            "extraction": self.exact / self.rows if task == "causal-lm" else None,
            "metric": self.metric / self.rows if metric else None,
            "row_losses": torch.cat(self.row_losses),
        }


@torch.no_grad()
def score_rows(model: nn.Module, data, name: str, *, loss_fn=None, batch_fn=None,
               output_fn=None, task: str | None = None, metric_fn=None,
               record: list | None = None) -> dict:  # fmt: skip
    """The figures of ``model`` (as it is: mode and gradients are the caller's) on ``data``;
    with ``record``, each classification batch's ``(logits, labels)`` on the CPU is appended
    to it (for :func:`assd.verify.per_example.outputs_of`, without a second pass).

    Raises:
        ValueError: a set without targets, an empty set, or outputs and targets whose
            shapes fit no task, fit two (name it: ``task=``), or do not fit ``task``.
    """
    from .sharded_scoring import data_parallel, sharded_tally

    how = sharded_tally if data_parallel(model, data) else _local_tally  # FSDP2: own batches
    tally, resolved = how(model, data, name, batch_fn=batch_fn, output_fn=output_fn, task=task,
                          loss_fn=loss_fn, metric_fn=metric_fn, record=record,
                          new_tally=_Tally, resolve=_resolve)  # fmt: skip
    if tally.rows == 0:
        raise ValueError(
            f"evaluation set {name!r} is empty; give at least one row or leave it out."
        )
    return tally.fields(resolved, metric_fn is not None)


def _local_tally(model, data, name: str, *, batch_fn, output_fn, task, loss_fn, metric_fn,
                 record, new_tally, resolve):  # fmt: skip
    """Every batch of ``data`` scored in this process: ``(tally, task)``."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    tally, resolved = new_tally(), None
    for batch in data:
        inputs, y = split_batch(batch, batch_fn)
        if y is None:
            raise ValueError(f"evaluation set {name!r} has no targets; give labelled rows.")
        out = forward(model, to_device(inputs, device), output_fn=output_fn).float()
        y = y.to(device)
        resolved = resolve(task if resolved is None else resolved, out, y, name)
        tally.add(resolved, out, y, loss_fn, metric_fn)
        if record is not None and out.dim() == 2 and not y.is_floating_point():
            record.append((out.detach().cpu(), y.cpu().long()))
    return tally, resolved


@torch.no_grad()
def probe_task(model: nn.Module, data, *, task: str | None = None, batch_fn=None,
               output_fn=None, name: str = "forget") -> str:  # fmt: skip
    """The task of ``model`` on ``data``'s first batch (two rows, eval mode), so that a
    task that must be named is asked for before any long pass."""
    for batch in data:
        inputs, y = split_batch(batch, batch_fn)
        if y is None:
            return task
        rows = _head(inputs)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        was_training = model.training
        model.eval()
        try:
            with model_errors("first forward pass", 0):  # a raw model error: say the likely fix
                out = forward(model, to_device(rows, device), output_fn=output_fn)
        except BatchError as error:
            raise error.named(f"the task check on {name!r}") from error.error
        finally:
            model.train(was_training)
        return _resolve(task, out, y[:2].to(out.device), name)
    return task


def _head(inputs):
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t[:2] if isinstance(t, torch.Tensor) and t.dim() else t, inputs)


def _resolve(task, out, y, name: str) -> str:
    try:
        return resolve_task(task, out, y)
    except ValueError as error:
        raise ValueError(f"evaluation set {name!r}: {error}") from None


def _count_pairs(counts, y: torch.Tensor, pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Add this batch's (true, predicted) pairs to a ``(C, C)`` count matrix."""
    keep = y >= 0  # ignored rows (e.g. -100 under a user's loss)
    y, pred = y[keep], pred[keep]
    size = max(n_classes, int(y.max()) + 1 if len(y) else 0)
    pairs = torch.bincount((y * size + pred).cpu(), minlength=size * size).reshape(size, size)
    return _add_counts(counts, pairs)


def _add_counts(counts, pairs):
    """``pairs`` added to ``counts`` (``pairs`` alone if there are none yet; None where the
    shapes differ)."""
    if counts is None:
        return pairs
    return None if counts.shape != pairs.shape else counts + pairs
