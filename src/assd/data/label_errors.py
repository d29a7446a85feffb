"""Label-error injection with a seed and a record of which rows were changed.

Three kinds of error, all of which give a flipped row a label *different*
from its true one:

``uniform``
    a uniformly random share of the rows, each relabelled with a uniformly
    random *other* class (the ASSD paper's setting).
``pair``
    class-conditional: random rows, each relabelled by one fixed mapping of
    classes with no fixed point (e.g. late -> on time), the way a systematic
    data-entry mistake tends to go.
``group``
    whole groups of rows (e.g. every flight to a few destinations) relabelled
    by one fixed mapping: a batch of rows entered wrongly together.

Example:
    >>> import numpy as np
    >>> errors = inject_label_errors(np.array([0, 1, 2, 0, 1, 2, 0, 1]), rate=0.25, seed=0)
    >>> len(errors.rows), bool((errors.labels[errors.rows] != errors.original).all())
    (2, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KINDS", "LabelErrors", "inject_label_errors"]

KINDS = ("uniform", "pair", "group")


@dataclass
class LabelErrors:
    """Noisy labels and the record of what was changed.

    Attributes:
        labels: all labels after injection (a new array).
        rows: sorted positions of the changed rows.
        original: their true labels (``labels[rows]`` holds the wrong ones).
        kind, rate, seed: how they were made.
        mapping: the class mapping of ``pair``/``group`` errors (``mapping[c]``
            is the wrong label entered for true class ``c``), else None.
        groups: the group keys that were (wholly or partly) relabelled.
    """

    labels: np.ndarray
    rows: np.ndarray
    original: np.ndarray
    kind: str
    rate: float
    seed: int
    mapping: list[int] | None = None
    groups: list | None = None

    def to_dict(self) -> dict:
        """A JSON-ready record: kind, rate, seed, mapping, groups and the changed rows."""
        return {
            "kind": self.kind,
            "rate": self.rate,
            "seed": self.seed,
            "n_changed": len(self.rows),
            "mapping": self.mapping,
            "groups": None if self.groups is None else [str(g) for g in self.groups],
            "rows": self.rows.tolist(),
            "original": self.original.tolist(),
            "noisy": self.labels[self.rows].tolist(),
        }


def inject_label_errors(
    labels,
    *,
    rate: float,
    kind: str = "uniform",
    seed: int = 0,
    n_classes: int | None = None,
    groups=None,
) -> LabelErrors:
    """Relabel ``round(rate * len(labels))`` rows wrongly; the input is not changed.

    Args:
        labels: integer class labels ``0 .. n_classes - 1``.
        rate: share of rows to relabel, in [0, 1).
        kind: ``"uniform"``, ``"pair"`` or ``"group"`` (see the module docstring).
        seed: seeds which rows, which wrong classes and (pair/group) the mapping.
        n_classes: number of classes (default: ``max(labels) + 1``).
        groups: one group key per row (``kind="group"`` only), e.g. destinations.
            Groups are taken whole, in a seeded random order, until the rate is
            reached; only the last one is taken in part.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError("labels must be a 1-D array of integer class ids.")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must lie in [0, 1), got {rate}.")
    if kind not in KINDS:
        raise ValueError(f"unknown error kind {kind!r}; choose one of {KINDS}.")
    k = int(n_classes if n_classes is not None else (y.max() + 1 if y.size else 0))
    if k < 2 or (y.size and (y.min() < 0 or y.max() >= k)):
        raise ValueError(f"labels must lie in 0..{k - 1} with at least 2 classes.")
    rng = np.random.default_rng(seed)
    n_wrong = round(rate * y.size)
    mapping, chosen_groups = None, None
    if kind == "group":
        rows, chosen_groups = _group_rows(groups, y.size, n_wrong, rng)
    else:
        rows = np.sort(rng.choice(y.size, size=n_wrong, replace=False))
    noisy = y.copy()
    if kind == "uniform":
        noisy[rows] = (y[rows] + rng.integers(1, k, size=rows.size)) % k
    else:
        mapping = _derangement(k, rng)
        noisy[rows] = np.asarray(mapping)[y[rows]]
    return LabelErrors(noisy, rows, y[rows].copy(), kind, rate, seed, mapping, chosen_groups)


def _derangement(k: int, rng: np.random.Generator) -> list[int]:
    """A random permutation of ``range(k)`` that moves every class."""
    while True:
        perm = rng.permutation(k)
        if (perm != np.arange(k)).all():
            return perm.tolist()


def _group_rows(groups, n: int, n_wrong: int, rng: np.random.Generator):
    if groups is None:
        raise ValueError("kind='group' needs groups= (one group key per row, e.g. destinations).")
    keys = np.asarray(groups)
    if keys.shape != (n,):
        raise ValueError(f"groups must hold one key per label ({n}), got shape {keys.shape}.")
    uniques = np.unique(keys)
    picked, rows, left = [], [], n_wrong
    for g in uniques[rng.permutation(uniques.size)]:
        if left == 0:
            break
        members = np.flatnonzero(keys == g)
        if members.size > left:
            members = rng.choice(members, size=left, replace=False)
        picked.append(g.item() if hasattr(g, "item") else g)
        rows.append(members)
        left -= members.size
    rows = np.sort(np.concatenate(rows)) if rows else np.empty(0, dtype=np.int64)
    return rows, picked
