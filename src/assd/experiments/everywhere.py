"""The error benchmark's "errors everywhere" mode: held-out rows carry the errors too.

Real tables with data-entry errors have them in every split: the rows a
model is checked on were typed by the same people as the rows it learnt
from. :func:`inject_everywhere` draws the errors once over the training and
held-out rows together (whole groups across both splits for group errors;
the same rate in both, on average, for uniform ones). The method forgets the
wrong *training* rows; the retain guard sees the held-out rows with their
wrong labels, as it would on such a table; the benchmark scores every model
on the *clean* held-out labels.

Example:
    >>> import numpy as np
    >>> train_y, test_y = np.array([0, 1, 2, 0, 1, 2]), np.array([0, 1, 2, 0])
    >>> groups = (np.array(list("aabbcc")), np.array(list("abca")))
    >>> errors, noisy_test = inject_everywhere(train_y, test_y, rate=0.3, kind="group", seed=0,
    ...                                         n_classes=3, groups=groups)
    >>> picked = errors.groups  # whole groups, in both splits
    >>> bool(np.all((noisy_test != test_y) == np.isin(groups[1], picked)))
    True
"""

from __future__ import annotations

import numpy as np

from ..data.label_errors import LabelErrors, inject_label_errors

__all__ = ["inject_everywhere"]


def inject_everywhere(train_y, test_y, *, rate: float, kind: str, seed: int, n_classes: int,
                      groups: tuple | None = None) -> tuple[LabelErrors, np.ndarray]:  # fmt: skip
    """Errors over the training and held-out labels at once.

    Args:
        train_y, test_y: the clean labels of the two splits.
        rate, kind, seed, n_classes: as :func:`assd.data.label_errors.inject_label_errors`.
        groups: ``(train groups, test groups)`` for group errors, else None.

    Returns:
        ``(errors of the training rows, the held-out rows' noisy labels)``.
    """
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    both = None if groups is None else np.concatenate([np.asarray(g) for g in groups])
    every = inject_label_errors(np.concatenate([train_y, test_y]), rate=rate, kind=kind,
                                seed=seed, n_classes=n_classes, groups=both)  # fmt: skip
    n = len(train_y)
    rows = every.rows[every.rows < n]
    train = LabelErrors(every.labels[:n].copy(), rows, train_y[rows].copy(), kind, rate, seed,
                        every.mapping, every.groups)  # fmt: skip
    return train, every.labels[n:].copy()


def guard_figures(result, watch: dict | None, held_out, held_out_wrong, forget, retain) -> dict:
    """A guarded request's record: whether the guard changed it, how many held-out rows
    it set aside and, when the held-out labels' truth is known (errors everywhere), the
    precision and recall of those rows against the held-out rows whose labels are wrong."""
    guard = result.outcome.guard if result.outcome is not None else None
    if guard is None or watch is None:
        return {}
    change = guard.get("changed")
    out = {"guard_changed": change is not None,
           "guard_asked_drop": None if change is None else change["asked_drop"],
           "guard_set_aside": watch["held_out_set_aside"],
           "guard_groups": len(watch["groups"])}  # fmt: skip
    if held_out_wrong is None or watch["reason"] != "errors":
        return out
    from ..verify.suspects import suspect_rows, wrong_groups

    aside = suspect_rows(held_out.x, wrong_groups(forget.x, retain.x)).numpy()
    hits = int((aside & held_out_wrong).sum())
    return {**out, "set_aside_precision": hits / aside.sum() if aside.any() else None,
            "set_aside_recall": hits / held_out_wrong.sum() if held_out_wrong.any() else None}
