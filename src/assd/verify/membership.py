"""Forget and retain sets from a data set and a list of ids, and checking that they fit.

:func:`forget_retain_loaders` builds the two loaders from any map-style data
set (torch ``Dataset`` or Hugging Face ``datasets.Dataset``: anything with
``__getitem__`` and ``__len__``) and the row positions to forget.

:func:`check_forget_rows` refuses forget rows that are not part of ``data=``
(or that are also in ``retain=``). Only what can be decided exactly and
cheaply is checked; everything else passes unchecked:

- loaders over the same data set, or over ``Subset`` views of one data set
  (what :func:`forget_retain_loaders` returns): compared by row position;
- :class:`~assd.TensorData`, lists of ``(x, y)`` tensor batches and loaders
  over a ``TensorDataset`` (none of which can transform rows): forget rows must
  appear among the data rows, by an exact fingerprint of each input row's bytes
  (duplicated rows count as present, so the check never refuses rows that are
  there);
- not detectable: loaders over unrelated ``Dataset`` objects or with random
  transforms, generators, lists of batches, and ``retain=`` overlap by content
  (identical rows may legitimately occur in both sets).

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> rows = TensorDataset(torch.randn(10, 3), torch.randint(0, 2, (10,)))
    >>> forget, retain = forget_retain_loaders(rows, [1, 4], batch_size=4)
    >>> len(forget.dataset), len(retain.dataset)
    (2, 8)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..batches import TensorData
from .rows import row_keys

__all__ = ["check_forget_rows", "forget_retain_loaders"]


def forget_retain_loaders(
    dataset: Any,
    forget_ids: Iterable[int],
    *,
    batch_size: int = 64,
    collate_fn: Callable | None = None,
    **loader_options: Any,
):
    """Two ``DataLoader`` s over ``dataset``: the rows at ``forget_ids`` and all the others.

    Args:
        dataset: a map-style data set (``__getitem__`` by position, ``__len__``).
        forget_ids: positions of the rows to forget (ints in ``[0, len(dataset))``).
        batch_size: rows per batch (both loaders; unshuffled, last batch kept).
        collate_fn: how rows become a batch (e.g. a Hugging Face
            ``DataCollatorWithPadding``); PyTorch's default otherwise.
        loader_options: more ``DataLoader`` options (``num_workers``, ...).

    Returns:
        ``(forget_loader, retain_loader)``, over ``Subset`` views of ``dataset``;
        ``DataLoader(dataset, ...)`` over all rows is the matching ``data=``.

    Raises:
        ValueError: for ids that are not row positions, duplicates, an empty
            forget set or one that covers every row.
    """
    from torch.utils.data import DataLoader, Subset

    n = len(dataset)
    ids = _positions(forget_ids, n)
    keep = torch.ones(n, dtype=torch.bool)
    keep[ids] = False
    if not keep.any():
        raise ValueError("the forget ids cover every row; nothing would be retained.")
    if loader_options.get("drop_last") or loader_options.get("shuffle"):
        raise ValueError("forget_retain_loaders keeps every row in order: no drop_last, shuffle.")
    options = dict(batch_size=batch_size, collate_fn=collate_fn, **loader_options)
    retain_ids = torch.nonzero(keep).flatten().tolist()
    return DataLoader(Subset(dataset, ids), **options), DataLoader(
        Subset(dataset, retain_ids), **options
    )


def _positions(forget_ids: Iterable[int], n: int) -> list[int]:
    try:
        ids = [int(i) for i in forget_ids]
    except (TypeError, ValueError) as error:
        raise ValueError(f"forget ids must be integer row positions ({error}).") from None
    if not ids:
        raise ValueError("the forget ids are empty; name at least one row.")
    bad = [i for i in ids if not 0 <= i < n]
    if bad:
        raise ValueError(f"forget ids {bad[:5]} are not row positions of a data set of {n} rows.")
    if len(set(ids)) != len(ids):
        raise ValueError("the forget ids hold duplicates; name each row once.")
    return ids


def check_forget_rows(forget: Any, *, data: Any = None, retain: Any = None) -> None:
    """Refuse forget rows that are provably not in ``data`` or provably also in ``retain``.

    Raises:
        ValueError: saying how many rows are wrong and what to pass instead.
    """
    forget_rows = _row_positions(forget)
    if data is not None:
        data_rows = _row_positions(data)
        if forget_rows and data_rows and forget_rows[0] is data_rows[0]:
            missing = len(forget_rows[1] - data_rows[1])
            if missing:
                _refuse_missing(missing, len(forget_rows[1]))
        elif (found := _missing_by_content(forget, data)) is not None and found[0]:
            _refuse_missing(*found)
    if retain is not None:
        retain_rows = _row_positions(retain)
        if forget_rows and retain_rows and forget_rows[0] is retain_rows[0]:
            shared = len(forget_rows[1] & retain_rows[1])
            if shared:
                raise ValueError(
                    f"{shared} forget rows are also in retain=; the retain set must be the "
                    "training set without the forget rows (assd.forget_retain_loaders builds both)."
                )


def _refuse_missing(missing: int, total: int) -> None:
    raise ValueError(
        f"{missing} of {total} forget rows are not part of data= (the whole training set); "
        "the forget set must be training rows of the same data. Build both from one data "
        "set, e.g. assd.forget_retain_loaders(dataset, forget_ids) and "
        "DataLoader(dataset) as data=."
    )


def _row_positions(loader: Any) -> tuple[Any, set[int]] | None:
    """``(base data set, row positions)`` of a loader over a data set or a Subset of one."""
    from torch.utils.data import DataLoader, Subset

    if not isinstance(loader, DataLoader):
        return None
    dataset, positions = loader.dataset, None
    while isinstance(dataset, Subset):
        indices = list(dataset.indices)
        positions = indices if positions is None else [indices[i] for i in positions]
        dataset = dataset.dataset
    if not hasattr(dataset, "__len__"):
        return None
    return dataset, set(range(len(dataset)) if positions is None else positions)


def _missing_by_content(forget: Any, data: Any) -> tuple[int, int] | None:
    """``(forget rows absent from data, forget rows)`` for tensor sources; else None."""
    forget_x, data_x = _input_rows(forget), _input_rows(data)
    if forget_x is None or data_x is None or forget_x.shape[1:] != data_x.shape[1:]:
        return None
    if forget_x.dtype != data_x.dtype:
        return None
    have = set(row_keys(data_x).tolist())
    keys = row_keys(forget_x).tolist()
    return sum(k not in have for k in keys), len(keys)


def _input_rows(source: Any) -> torch.Tensor | None:
    from torch.utils.data import DataLoader, Subset, TensorDataset

    if isinstance(source, TensorData):
        return source.inputs if isinstance(source.inputs, torch.Tensor) else None
    if isinstance(source, list) and source and all(_tensor_pair(b) for b in source):
        return torch.cat([b[0] for b in source]) if _one_row_shape(source) else None
    if isinstance(source, DataLoader):
        dataset, rows = source.dataset, None
        if isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorDataset):
            dataset, rows = dataset.dataset, torch.as_tensor(list(dataset.indices))
        if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
            x = dataset.tensors[0]
            return x if rows is None else x[rows]
    return None


def _tensor_pair(batch: Any) -> bool:
    return (
        isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], torch.Tensor)
    )


def _one_row_shape(batches: list) -> bool:
    return len({(b[0].shape[1:], b[0].dtype, b[0].device) for b in batches}) == 1
