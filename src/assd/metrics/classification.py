"""Summary metrics of a classifier's predictions beyond plain accuracy.

Accuracy alone hides a model that only predicts the common class (a table
with 6 % positives gives 0.94 for "always no"). These figures sit beside it
in every report: balanced accuracy (mean per-class recall), macro-F1,
per-class recall, and the majority-class baseline with a flag when the model
does not beat it. The arithmetic is scikit-learn's.

Example:
    >>> s = classification_summary([0, 0, 0, 1], [0, 0, 1, 1])
    >>> s["accuracy"], s["balanced_accuracy"], s["majority_baseline"], s["beats_baseline"]
    (0.75, 0.8333333333333333, 0.75, False)
"""

from __future__ import annotations

import numpy as np

__all__ = ["classification_summary"]


def classification_summary(
    y_true, y_pred, *, labels=None, majority_class=None
) -> dict:
    """Accuracy, balanced accuracy, macro-F1, per-class recall and the majority baseline.

    Args:
        y_true: true class of each row (ints or strings).
        y_pred: predicted class of each row, same length.
        labels: every class the model knows, in order (default: those seen in
            either array); classes absent from ``y_true`` get recall NaN.
        majority_class: the class an "always predict the most common class"
            model would answer (e.g. the training set's most common class);
            default: the most common class of ``y_true``.

    Returns:
        A JSON-ready dict: ``n``, ``accuracy``, ``balanced_accuracy``,
        ``macro_f1``, ``per_class_recall`` ({class: recall}),
        ``majority_class``, ``majority_baseline`` (accuracy of always
        answering it) and ``beats_baseline`` (accuracy strictly above it).
    """
    from sklearn.metrics import f1_score, recall_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D and of one length, got shapes {y_true.shape} "
            f"and {y_pred.shape}."
        )
    n = len(y_true)
    if n == 0:
        raise ValueError("no rows to score: pass at least one prediction.")
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
    labels = list(labels)
    present = [c for c in labels if np.any(y_true == c)]
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    per_class = {
        _key(c): (float(r) if c in present else float("nan"))
        for c, r in zip(labels, recall, strict=True)
    }
    if majority_class is None:
        values, counts = np.unique(y_true, return_counts=True)
        majority_class = values[np.argmax(counts)]
    accuracy = float(np.mean(y_true == y_pred))
    baseline = float(np.mean(y_true == majority_class))
    return {
        "n": n,
        "accuracy": accuracy,
        "balanced_accuracy": float(np.mean([per_class[_key(c)] for c in present])),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "per_class_recall": per_class,
        "majority_class": _key(majority_class),
        "majority_baseline": baseline,
        "beats_baseline": accuracy > baseline,
    }


def _key(c):
    """A JSON-ready class name (NumPy scalars become Python ones)."""
    return c.item() if isinstance(c, np.generic) else c
