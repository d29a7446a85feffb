"""The before/after figures of a table request from one forward pass per model and set.

A request's report needs, on every evaluation set and for the model before
and after: accuracy, balanced accuracy, macro-F1, recall per class and the
majority-class baseline. All of them follow from the ``(true, predicted)``
count matrix, so each model runs once over each set and nothing else is
recomputed (an earlier version ran four passes per set and scikit-learn's
scorers on every row).

Example:
    >>> import torch
    >>> counts = torch.tensor([[3, 1], [0, 0]])  # 3 of 4 zeros right; no row of class 1
    >>> s = summary_from_counts(counts, ["a", "b"], majority=0)
    >>> s["balanced_accuracy"], s["macro_f1"], s["recall"]["b"] != s["recall"]["b"]
    (0.75, 0.8571428571428571, True)
"""

from __future__ import annotations

import math

import torch

from ..batches import TensorData
from ..metrics import predict

__all__ = ["before_after", "summary_from_counts"]

BATCH = 8192


def before_after(before, after, sets: dict, class_names: list[str], majority: int):
    """``(accuracy, metrics)`` of the report: ``{set: {"before", "after", "n"}}`` and
    ``{set: {"before": summary, "after": summary}}`` (:func:`summary_from_counts`)."""
    accuracy, metrics = {}, {}
    k = len(class_names)
    for name, rows in sets.items():
        known = rows.y >= 0
        counts = {}
        if known.any():
            x, y = (rows.x, rows.y) if known.all() else (rows.x[known], rows.y[known])
            data = TensorData(x, y, batch_size=BATCH)  # no copy when every label is known
            counts = {when: _counts(model, data, k) for when, model in
                      (("before", before), ("after", after))}  # fmt: skip
        accuracy[name] = {**{w: _accuracy(c) for w, c in counts.items()}, "n": len(rows)}
        if not counts:
            accuracy[name].update(before=math.nan, after=math.nan)
            continue
        metrics[name] = {w: summary_from_counts(c, class_names, majority)
                         for w, c in counts.items()}  # fmt: skip
    return accuracy, metrics


def summary_from_counts(counts: torch.Tensor, class_names: list[str], majority: int) -> dict:
    """Balanced accuracy, macro-F1, recall per class and the baseline from a count matrix
    (rows: true class, columns: predicted), as :func:`assd.tabular.evaluate.summarize`."""
    c = counts.double()
    n, right = float(c.sum()), c.diagonal()
    truth, said = c.sum(1), c.sum(0)
    present = truth > 0
    recall = torch.where(present, right / truth.clamp(min=1), torch.full_like(right, math.nan))
    precision = right / said.clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    accuracy = float(right.sum()) / n
    baseline = float(truth[majority]) / n
    return {
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "recall": {name: float(r) for name, r in zip(class_names, recall, strict=True)},
        "majority_class": class_names[majority],
        "majority_baseline": baseline,
        "beats_baseline": accuracy > baseline,
    }


def _counts(model, data, k: int) -> torch.Tensor:
    pred, target = predict(model, data)
    return torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)


def _accuracy(counts: torch.Tensor) -> float:
    return float(counts.diagonal().sum()) / float(counts.sum())
