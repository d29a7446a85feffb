"""Accuracy beside balanced accuracy, macro-F1, per-class recall, the majority-class
baseline and the confusion matrix of a classifier on rows.

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

import numpy as np
import torch
from torch import nn

from ..batches import TensorData
from ..metrics import predict

__all__ = [
    "LEGEND",
    "classify",
    "format_classification",
    "format_metrics_line",
    "summarize",
    "training_majority",
]

LEGEND = """\
accuracy: share of rows predicted right; balanced: mean of the per-class
recalls (0.5 for a two-class model that ignores its input); macro-F1: mean
over classes of the harmonic mean of precision and recall; recall of a class:
share of its rows predicted right; baseline: accuracy of always answering the
most common training class (a model not above it has learnt nothing that
accuracy can show)."""


def classify(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    class_names: list[str],
    majority_class: int | None = None,
) -> dict:
    """Accuracy, per-class recall, the summary metrics and the confusion matrix, JSON-ready.

    Rows whose label is -1 (missing or unknown class) are left out and counted.
    ``majority_class`` (a class index, e.g. the training set's most common
    class) sets the baseline; default: the most common class of ``y``.

    Returns:
        ``{"n", "n_unlabelled", "accuracy", "per_class": {name: {"n", "accuracy"}},
        "confusion": rows = true class, columns = predicted class, "classes"}``
        plus :func:`summarize`'s balanced accuracy, macro-F1, baseline and flag.
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
        **(summarize(target, pred, class_names, majority_class) if n else {}),
    }


def summarize(target, pred, class_names: list[str], majority_class: int | None = None) -> dict:
    """:func:`assd.metrics.classification_summary` of class indices, keyed by class names."""
    from ..metrics.classification import classification_summary

    s = classification_summary(
        np.asarray(target), np.asarray(pred), labels=range(len(class_names)),
        majority_class=majority_class,
    )  # fmt: skip
    return {
        "balanced_accuracy": s["balanced_accuracy"],
        "macro_f1": s["macro_f1"],
        "recall": {class_names[i]: r for i, r in s["per_class_recall"].items()},
        "majority_class": class_names[s["majority_class"]],
        "majority_baseline": s["majority_baseline"],
        "beats_baseline": s["beats_baseline"],
    }


def training_majority(tabular) -> int | None:
    """Index of the most common class among a saved model's training rows (None if unknown)."""
    per_class = tabular.extra.get("metrics", {}).get("train", {}).get("per_class")
    if not per_class:
        return None
    counts = [per_class.get(name, {}).get("n", 0) for name in tabular.task.class_names]
    return int(np.argmax(counts))


def format_metrics_line(report: dict) -> str:
    """One line: accuracy, balanced accuracy, macro-F1 and the baseline, flagged if not beaten."""
    if not report.get("n"):
        return "no labelled rows"
    line = (
        f"accuracy {report['accuracy']:.4f}, balanced {report['balanced_accuracy']:.4f}, "
        f"macro-F1 {report['macro_f1']:.4f} on {report['n']} rows; baseline "
        f"{report['majority_baseline']:.4f} (always {report['majority_class']!r})"
    )
    if not report["beats_baseline"]:
        line += " -- NOT above the baseline"
    return line


def format_classification(report: dict, *, title: str = "") -> str:
    """Plain-text rendering of :func:`classify`'s report for the terminal."""
    lines = [title] if title else []
    lines.append(format_metrics_line(report))
    if report["n_unlabelled"]:
        lines.append(f"({report['n_unlabelled']} rows without a known label were left out)")
    names = report["classes"]
    width = max(8, *(len(n) for n in names)) + 1
    lines.append("recall per class: " + ", ".join(
        f"{name} {v['accuracy']:.4f} (n={v['n']})" for name, v in report["per_class"].items()
    ))  # fmt: skip
    lines.append("confusion (rows: true, columns: predicted)")
    lines.append(" " * width + "".join(f"{n:>{width}}" for n in names))
    for name, row in zip(names, report["confusion"], strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
