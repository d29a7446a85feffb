"""Accuracy, per-class accuracy and the confusion matrix of a classifier on rows.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 2, bias=False)
    >>> _ = model.weight.data.copy_(torch.eye(2))
    >>> x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 0, 0])
    >>> report = classify(model, x, y, class_names=["a", "b"])
    >>> report["accuracy"], report["confusion"]
    (0.6666666666666666, [[2, 1], [0, 0]])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..batches import TensorData
from ..metrics import predict

__all__ = ["classify", "format_classification"]


def classify(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, class_names: list[str]) -> dict:
    """Accuracy, per-class accuracy (recall) and the confusion matrix, JSON-ready.

    Rows whose label is -1 (missing or unknown class) are left out and counted.

    Returns:
        ``{"n", "n_unlabelled", "accuracy", "per_class": {name: {"n", "accuracy"}},
        "confusion": rows = true class, columns = predicted class, "classes"}``.
    """
    labelled = y >= 0
    pred, target = predict(model, TensorData(x[labelled], y[labelled], batch_size=4096))
    k = len(class_names)
    confusion = torch.zeros(k, k, dtype=torch.long)
    if len(target):
        confusion.index_put_((target, pred), torch.ones_like(target), accumulate=True)
    per_class = {}
    for i, name in enumerate(class_names):
        n = int(confusion[i].sum())
        per_class[name] = {"n": n, "accuracy": float(confusion[i, i]) / n if n else math.nan}
    n = len(target)
    return {
        "n": n,
        "n_unlabelled": int((~labelled).sum()),
        "accuracy": float(confusion.diag().sum()) / n if n else math.nan,
        "per_class": per_class,
        "classes": list(class_names),
        "confusion": confusion.tolist(),
    }


def format_classification(report: dict, *, title: str = "") -> str:
    """Plain-text rendering of :func:`classify`'s report for the terminal."""
    lines = [title] if title else []
    lines.append(f"accuracy {report['accuracy']:.4f} on {report['n']} rows")
    if report["n_unlabelled"]:
        lines.append(f"({report['n_unlabelled']} rows without a known label were left out)")
    names = report["classes"]
    width = max(8, *(len(n) for n in names)) + 1
    lines.append("per class: " + ", ".join(
        f"{name} {v['accuracy']:.4f} (n={v['n']})" for name, v in report["per_class"].items()
    ))  # fmt: skip
    lines.append("confusion (rows: true, columns: predicted)")
    lines.append(" " * width + "".join(f"{n:>{width}}" for n in names))
    for name, row in zip(names, report["confusion"], strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
