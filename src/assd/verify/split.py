"""Evaluation sets that hold what is being forgotten: split into "forgotten part" and "rest".

A retained or held-out set that contains forget rows, or rows of a class that
is forgotten whole (a label the forget rows carry and no retained row does),
must lose accuracy on exactly those rows when the request works: a guard
watching the whole set would break on every try and the request would change
nothing. :func:`separate_forgotten` moves such rows into a set of their own,
``"<name> (forgotten part)"``, scored before and after but never watched by
the guard (:func:`is_forgotten_part`); the rest keeps the name. Batches are
sliced row by row (tensors, tuples and mappings of tensors with the rows on
dimension 0); with a ``batch_fn`` the batch layout is the user's, so such a set
is refused with a message instead.

Example:
    >>> import torch
    >>> from assd.batches import TensorData
    >>> x = torch.arange(6.).reshape(6, 1)
    >>> sets = {"forget": TensorData(x[:2], torch.tensor([2, 2])),
    ...         "retain": TensorData(x[2:4], torch.tensor([0, 1])),
    ...         "test": TensorData(x[4:], torch.tensor([2, 0]))}
    >>> out = separate_forgotten(sets)
    >>> sorted(out), sum(len(y) for _, y in out["test (forgotten part)"])
    (['forget', 'retain', 'test', 'test (forgotten part)'], 1)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch.utils._pytree import tree_map

from ..batches import split_batch
from .rows import row_keys

__all__ = [
    "FORGOTTEN_PART",
    "LOOK_ALIKES",
    "UNSEEN",
    "Chained",
    "batch_row_keys",
    "held_out_rows",
    "is_forgotten_part",
    "separate_forgotten",
]

log = logging.getLogger("assd")

FORGOTTEN_PART = " (forgotten part)"


def is_forgotten_part(name: str) -> bool:
    """Whether ``name`` is the forgotten part split off an evaluation set."""
    return name.endswith(FORGOTTEN_PART)


# Rows of the forget rows' kind that the model never saw (a causal LM's never-seen
# sequences): the forget target's reference, not data to keep, so never guarded
# (a set of that name scored as a classifier's is watched as any other).
UNSEEN = "unseen"


# Held-out rows like the forget rows (e.g. a forgotten class's test rows); not guarded.
LOOK_ALIKES = "test" + FORGOTTEN_PART


class Chained:
    """Batches of several sets, one after the other (iterable more than once)."""

    def __init__(self, parts: list):
        self.parts = list(parts)

    def __iter__(self):
        for part in self.parts:
            yield from part


def held_out_rows(sets: dict):
    """The rows every model's confidences are calibrated on
    (:func:`assd.verify.per_example.calibrate`): ``"test"`` and :data:`LOOK_ALIKES`.
    Without look-alikes of the forget rows, a model that predicts a forgotten class below
    every held-out row is only known to sit *below* them (censored); with them, each forget
    row is ranked among rows like it that no model trained on, and the test asks whether
    the model treats the rows it trained on differently. None: no held-out rows."""
    parts = [sets[k] for k in ("test", LOOK_ALIKES) if sets.get(k) is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Chained(parts)


def separate_forgotten(sets: dict, *, batch_fn=None, row_keys=None) -> dict:
    """``sets`` with every other set's forgotten rows moved to a set of their own.

    Args:
        sets: ``{"forget": ..., "retain": ..., ...}`` (batches).
        batch_fn: the user's batch reader; with one, a set holding forgotten rows is refused.
        row_keys: ``row_keys(batch) -> [key per row]`` for matching forget rows by value
            (None: only whole classes are matched).

    Raises:
        ValueError: a set holding forgotten rows that cannot be split (``batch_fn``).
    """
    classes = _forgotten_classes(sets, batch_fn)
    forget_keys = set()
    if row_keys is not None:
        for batch in sets["forget"]:
            forget_keys.update(row_keys(batch))
        forget_keys.discard(None)
    if not classes and not forget_keys:
        return sets
    out = {}
    for name, data in sets.items():
        if name == "forget" or is_forgotten_part(name):  # given apart already: kept as is
            out[name] = data
            continue
        rest, part = _split(name, data, classes, forget_keys, batch_fn, row_keys)
        if part is None:
            out[name] = data
            continue
        if rest:
            out[name] = rest
        out[name + FORGOTTEN_PART] = part
        log.warning("evaluation set %r holds %d row(s) of what is being forgotten (%s); they "
                    "are scored apart as %r, and a retain guard (if any) watches the rest", name,
                    _rows(part), _what(classes, forget_keys), name + FORGOTTEN_PART)  # fmt: skip
    return out


def _forgotten_classes(sets: dict, batch_fn) -> set:
    """Labels of the forget rows that no retained row carries (whole classes forgotten)."""
    if "retain" not in sets:
        return set()
    labels = {}
    for name in ("forget", "retain"):
        seen = set()
        for batch in sets[name]:
            _, y = split_batch(batch, batch_fn)
            if not _class_labels(y):
                return set()
            seen.update(int(v) for v in y.tolist())
        labels[name] = seen
    return labels["forget"] - labels["retain"]


def _class_labels(y) -> bool:
    return isinstance(y, torch.Tensor) and y.dim() == 1 and not y.is_floating_point()


def _split(name, data, classes: set, forget_keys: set, batch_fn, row_keys):
    """``(rest batches, forgotten batches)``, or ``(None, None)`` if nothing is forgotten."""
    rest, part, found = [], [], False
    for batch in data:
        _, y = split_batch(batch, batch_fn)
        mask = torch.zeros(len(y), dtype=torch.bool)
        if classes and _class_labels(y):
            mask |= torch.isin(y.cpu(), torch.tensor(sorted(classes)))
        if forget_keys:
            mask |= torch.tensor([k in forget_keys for k in row_keys(batch)], dtype=torch.bool)
        found = found or bool(mask.any())
        rest.append((batch, ~mask))
        part.append((batch, mask))
    if not found:
        return None, None
    if batch_fn is not None:
        raise ValueError(
            f"evaluation set {name!r} holds rows of what is being forgotten "
            f"({_what(classes, forget_keys)}); the retain guard would break on every try. "
            f"Drop those rows from {name!r}, or pass them as a set of their own."
        )
    return _take(rest), _take(part)


def _take(pairs) -> list:
    """The batches' rows where their mask is True (empty batches left out)."""
    kept = []
    for batch, mask in pairs:
        if mask.any():
            kept.append(_rows_of(batch, mask))
    return kept


def _rows_of(batch, mask: torch.Tensor):
    index = mask.nonzero().squeeze(1)

    def pick(t):
        if isinstance(t, torch.Tensor) and t.dim() and len(t) == len(mask):
            return t[index.to(t.device)]
        return t

    if isinstance(batch, Mapping):  # (a BatchEncoding becomes a plain dict)
        return {k: pick(v) for k, v in batch.items()}
    return tree_map(pick, batch)


def _rows(batches: list) -> int:
    return sum(len(split_batch(b)[1]) for b in batches)


def _what(classes: set, forget_keys: set) -> str:
    parts = []
    if classes:
        parts.append(f"forgotten class(es) {sorted(classes)}")
    if forget_keys:
        parts.append("forget rows")
    return " and ".join(parts)


def batch_row_keys(batch, batch_fn=None) -> list:
    """Each row's key (:func:`~assd.verify.rows.row_keys`: its input and target) for tensor
    inputs; other inputs: None per row."""
    inputs, y = split_batch(batch, batch_fn)
    n = len(y) if y is not None else len(inputs) if isinstance(inputs, torch.Tensor) else 0
    if not isinstance(inputs, torch.Tensor):
        return [None] * n
    return row_keys(inputs, y if isinstance(y, torch.Tensor) else None).tolist()
