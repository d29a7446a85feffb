"""Finding wrongly labelled rows: out-of-fold probabilities, cleanlab, and the group rule.

Confident learning (cleanlab's :func:`cleanlab.filter.find_label_issues`)
flags rows whose given label disagrees with *out-of-fold* predicted
probabilities: each row is judged by a model trained without it. Errors that
cover whole groups of rows (every flight to a few destinations) are learnt by
such models too, unless the folds hold whole groups out: then a group's
labels are judged by a model that never saw the group.

Held-out folds still flag stray rows everywhere (the task's own noise). The
*group rule* uses the evidence of where the flags fall: a group holding far
more flags than chance (a one-sided binomial tail test of its flag count
against the table's flag rate, Benjamini-Hochberg corrected over groups at
5 %, and more than half of its rows flagged) is judged wrong as a whole.
When some group is, the rows written are those groups' rows (``whole_groups``)
or their flagged rows; when none is, every flagged row is written.

Example:
    >>> import numpy as np
    >>> groups = np.repeat(np.arange(20), 10)   # 20 groups of 10 rows
    >>> flagged = groups < 2                    # groups 0 and 1 flagged whole ...
    >>> flagged[[25, 77]] = True                # ... and two stray rows
    >>> [str(g) for g in guilty_groups(flagged, groups).groups]
    ['0', '1']
    >>> mask, _ = rows_to_write(flagged, groups)
    >>> int(mask.sum()), bool(mask[25])
    (20, False)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Discovery",
    "GroupVerdict",
    "discover",
    "fold_indices",
    "guilty_groups",
    "out_of_fold_probabilities",
    "rows_to_write",
]

log = logging.getLogger("assd")

FDR = 0.05  # false-discovery rate over groups (Benjamini-Hochberg)
MIN_SHARE = 0.5  # a guilty group has more than this share of its rows flagged


def fold_indices(y, *, folds: int = 5, groups=None, seed: int = 0) -> np.ndarray:
    """The fold (0 .. folds-1) of every row: stratified by label, seeded, groups kept whole.

    Args:
        y: class label per row.
        folds: number of folds K (at least 2).
        groups: one key per row; every row of a key lands in the same fold
            (scikit-learn's ``StratifiedGroupKFold``). None: ``StratifiedKFold``.
        seed: shuffles the assignment.

    Raises:
        ValueError: fewer than 2 folds or rows per fold; a group column with
            one value or fewer values than folds; a group so large that the
            model trained without it would see less than one fold of rows.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(y)
    if folds < 2 or len(y) < 2 * folds:
        raise ValueError(f"need at least 2 folds and 2 rows per fold; got {folds} folds, "
                         f"{len(y)} rows.")  # fmt: skip
    out = np.full(len(y), -1, dtype=np.int64)
    if groups is None:
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y)
    else:
        keys = _check_groups(groups, len(y), folds)
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        splits = splitter.split(y, y, keys)
    for k, (_, held_out) in enumerate(splits):
        out[held_out] = k
    return out


def _check_groups(groups, n: int, folds: int) -> np.ndarray:
    keys = np.asarray(groups).astype(str)
    if keys.shape != (n,):
        raise ValueError(f"need one group key per row ({n}), got shape {keys.shape}.")
    values, counts = np.unique(keys, return_counts=True)
    if len(values) < 2:
        raise ValueError(
            f"the group column has one value ({values[0]!r}) in the training rows: there is no "
            "group to hold out. Name a column whose values split the rows (e.g. a destination "
            "or a batch of entries), or leave the group column out."
        )
    if len(values) < folds:
        raise ValueError(f"the group column has {len(values)} values, fewer than the {folds} "
                         f"folds; use --folds {len(values)} or fewer.")  # fmt: skip
    biggest = int(np.argmax(counts))
    if counts[biggest] > n - n // folds:
        raise ValueError(
            f"group {values[biggest]!r} holds {counts[biggest]} of {n} rows: held out, it would "
            f"leave fewer than one fold ({n // folds} rows) to train on. Use a finer group "
            "column, or leave it out."
        )
    return keys


def out_of_fold_probabilities(x: torch.Tensor, y: torch.Tensor, fold: np.ndarray, *,
                              n_classes: int, train) -> np.ndarray:  # fmt: skip
    """Predicted class probabilities of every row by a model trained without its fold.

    Args:
        x, y: features and labels of all rows.
        fold: fold index per row (:func:`fold_indices`).
        n_classes: number of classes (columns of the result).
        train: ``train(x, y) -> model``, the model's training recipe.

    Returns:
        ``(rows, n_classes)`` float64 probabilities (softmax of the logits).
    """
    probs = np.zeros((len(y), n_classes))
    for k in np.unique(fold):
        held = torch.from_numpy(np.flatnonzero(fold == k))
        kept = torch.from_numpy(np.flatnonzero(fold != k))
        model = train(x[kept], y[kept]).eval()
        with torch.no_grad():
            logits = torch.cat([model(x[held[i : i + 8192]]) for i in range(0, len(held), 8192)])
        probs[held.numpy()] = torch.softmax(logits.double(), dim=1).numpy()
    return probs


@dataclass
class GroupVerdict:
    """Where the flags fall: per-group counts, tail p-values and the guilty groups.

    Attributes:
        keys: every group value; ``rows`` and ``flags`` its row and flag counts.
        p_values: one-sided binomial tail ``P(X >= flags)`` at the table's rate.
        adjusted: Benjamini-Hochberg adjusted p-values.
        rate: the table's flag rate.
        groups: the guilty groups, most flags first.
    """

    keys: np.ndarray
    rows: np.ndarray
    flags: np.ndarray
    p_values: np.ndarray
    adjusted: np.ndarray
    rate: float
    groups: list

    def summary(self, top: int = 10) -> list[dict]:
        """The groups holding most flags: value, rows, flags, share, adjusted p, guilty."""
        order = np.lexsort((self.keys, -self.flags))[:top]
        guilty = set(map(str, self.groups))
        return [{"group": str(self.keys[i]), "rows": int(self.rows[i]),
                 "flags": int(self.flags[i]), "share": float(self.flags[i] / self.rows[i]),
                 "p_adjusted": float(self.adjusted[i]), "guilty": str(self.keys[i]) in guilty}
                for i in order]  # fmt: skip


def guilty_groups(flagged, groups) -> GroupVerdict:
    """The groups holding far more flags than chance (see the module docstring)."""
    from scipy.stats import binom, false_discovery_control

    flagged = np.asarray(flagged, dtype=bool)
    keys, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    rows = np.bincount(inverse, minlength=len(keys))
    flags = np.bincount(inverse, weights=flagged, minlength=len(keys)).astype(np.int64)
    rate = float(flagged.mean()) if flagged.size else 0.0
    # P(X >= flags) at the table's rate (no evidence either way when nothing or all is flagged)
    p = np.ones(len(keys)) if rate in (0.0, 1.0) else binom.sf(flags - 1, rows, rate)
    adjusted = false_discovery_control(p, method="bh")
    guilty = (adjusted <= FDR) & (flags > MIN_SHARE * rows)
    order = np.lexsort((keys, -flags))
    return GroupVerdict(keys, rows, flags, p, adjusted, rate, [keys[i] for i in order if guilty[i]])


def rows_to_write(flagged, groups=None, *, whole_groups: bool = True):
    """Which rows to write: ``(mask, verdict or None)`` under the group rule."""
    flagged = np.asarray(flagged, dtype=bool)
    if groups is None:
        return flagged.copy(), None
    verdict = guilty_groups(flagged, groups)
    if not verdict.groups:
        return flagged.copy(), verdict
    in_guilty = np.isin(np.asarray(groups).astype(str), np.asarray(verdict.groups, dtype=str))
    return (in_guilty if whole_groups else in_guilty & flagged), verdict


@dataclass
class Discovery:
    """What :func:`discover` found.

    Attributes:
        flagged: rows cleanlab flagged (``find_label_issues``).
        written: rows to forget after the group rule.
        quality: cleanlab's label quality score per row (self-confidence; low = suspect).
        probs: the out-of-fold probabilities.
        fold: the fold of every row.
        verdict: the group rule's evidence (None without groups).
        seconds: wall time of the whole search.
    """

    flagged: np.ndarray
    written: np.ndarray
    quality: np.ndarray
    probs: np.ndarray
    fold: np.ndarray
    verdict: GroupVerdict | None
    seconds: float


def discover(x: torch.Tensor, y: torch.Tensor, *, n_classes: int, train, groups=None,
             folds: int = 5, seed: int = 0, whole_groups: bool = True) -> Discovery:  # fmt: skip
    """Out-of-fold probabilities, cleanlab's label issues, then the group rule.

    Args:
        x, y: encoded features and (possibly wrong) labels of the training rows.
        n_classes: number of classes.
        train: ``train(x, y) -> model``: the recipe the model was trained with.
        groups: one key per row: folds hold whole groups out and the group rule
            applies (None: stratified folds, every flagged row is written).
        folds, seed: the K folds and their seed.
        whole_groups: write every row of a guilty group (else its flagged rows).
    """
    import time

    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    tick = time.perf_counter()
    labels = y.numpy()
    fold = fold_indices(labels, folds=folds, groups=groups, seed=seed)
    probs = out_of_fold_probabilities(x, y, fold, n_classes=n_classes, train=train)
    flagged = find_label_issues(labels, probs)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    written, verdict = rows_to_write(flagged, groups, whole_groups=whole_groups)
    seconds = time.perf_counter() - tick
    return Discovery(flagged, written, quality, probs, fold, verdict, seconds)
