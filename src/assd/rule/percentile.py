"""ASSD's adaptive percentile and an exact percentile that never sorts or copies everything.

ASSD picks its selection threshold alpha as the p-th percentile of the
relative importances, with ``p = 100 - ln(1 + 100 * n_forget / n_data)``.
The percentile here is NumPy's default (``method="linear"``) over the finite
values only. It streams over blocks of at most :data:`BLOCK` values (the
ratios of a parameter are computed block by block into one reused buffer;
small parameters share a block), so no vector of all ratios ever exists:

1. pass one counts the finite values and keeps a strided sample of them;
2. the sample brackets the two order statistics the interpolation needs;
3. pass two counts the values below the bracket and gathers those inside it;
   ``numpy.partition`` (introselect, O(n)) places the two ranks.

The bracket is checked by counting, so the result is exact whatever the
sample looks like; an unlucky bracket is widened and the pass repeated. If a
bracket holds more than ``max_gather`` values (heavy ties, or a model so
large that even the bracket is big), it is split at the values of a sample
drawn inside it and counted per piece until the piece holding the rank fits
or holds a single value. At most ``max_gather`` values are held at once.

Blocks are NumPy views of the tensors' memory: NumPy's vectorised compare
and count are several times faster than PyTorch's on CPU. Tensors on other
devices are copied to the host one block at a time.

Example:
    >>> import torch
    >>> exact_percentile(torch.tensor([1.0, float("nan"), 3.0, float("inf"), 2.0]), 50.0)
    2.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch

from .rank_search import _gather_finite, _large, _lerp, _partition, _ranks
from .value_blocks import _Chunks, _Ratios

__all__ = ["exact_percentile", "forget_percentile", "percentile_of_chunks", "ratio_percentile"]

MAX_GATHER = 1 << 22  # most values gathered at once (16 MiB of float32)


def forget_percentile(n_forget: int, n_data: int) -> float:
    """The ASSD percentile ``p = 100 - ln(1 + 100 * n_forget / n_data)``.

    Args:
        n_forget: number of samples to forget, at least 1.
        n_data: number of samples in the whole training set (retain + forget).

    Example:
        >>> round(forget_percentile(1, 100), 2)
        99.31
    """
    if n_forget < 1:
        raise ValueError(f"n_forget must be at least 1, got {n_forget}: the forget set is empty.")
    if n_data <= n_forget:
        raise ValueError(
            f"n_data ({n_data}) must exceed n_forget ({n_forget}): forgetting the whole "
            "training set leaves nothing to keep; retrain from scratch instead."
        )
    return 100.0 - math.log(1.0 + 100.0 * n_forget / n_data)


def exact_percentile(values: torch.Tensor, q: float, *, max_gather: int = MAX_GATHER) -> float:
    """The q-th percentile of the finite entries of ``values``.

    Equals ``numpy.percentile(v[np.isfinite(v)], q)`` (linear interpolation),
    computed in the dtype of ``values``. NaN and +-inf entries are dropped.
    """
    flat = values.detach().reshape(-1)
    return percentile_of_chunks(lambda: iter((flat,)), q, total=flat.numel(), max_gather=max_gather)


def percentile_of_chunks(
    make_chunks: Callable[[], Iterable[torch.Tensor]],
    q: float,
    *,
    total: int,
    max_gather: int = MAX_GATHER,
) -> float:
    """The q-th percentile of the finite values of all chunks together.

    Args:
        make_chunks: called once per pass (two or more times); each call
            must yield the same float tensors in the same order. Chunks may be
            computed on the fly, so only one needs to exist at a time.
        q: percentile in [0, 100].
        total: the number of elements over all chunks (finite or not).
        max_gather: most values held at once (besides one chunk).

    Returns:
        ``numpy.percentile`` of the concatenated finite values, as a float.
    """
    return _percentile(_Chunks(make_chunks), q, total, max_gather)


def ratio_percentile(
    forget: Mapping[str, torch.Tensor],
    data: Mapping[str, torch.Tensor],
    q: float,
    *,
    max_gather: int = MAX_GATHER,
) -> float:
    """The q-th percentile of the finite ratios ``forget[n] / data[n]`` pooled over all names.

    The ratios are computed block by block into one reused buffer, once per
    pass, instead of being stored: the extra memory is a few MiB.

    Example:
        >>> f = {"w": torch.tensor([1.0, 4.0, 0.0]), "b": torch.tensor([9.0])}
        >>> d = {"w": torch.tensor([1.0, 2.0, 0.0]), "b": torch.tensor([3.0])}
        >>> ratio_percentile(f, d, 50.0)
        2.0
    """
    total = sum(forget[n].numel() for n in forget)
    return _percentile(_Ratios(forget, data), q, total, max_gather)


def _percentile(source, q: float, total: int, max_gather: int) -> float:
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile must lie in [0, 100], got {q}.")
    if max_gather < 1:
        raise ValueError(f"max_gather must be at least 1, got {max_gather}.")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if total <= max_gather:  # small: one pass gathers every finite value
            values = _gather_finite(source)
            low, high, t = _ranks(values.size, q)
            a, b = _partition(values, low, high, 0)
            dtype = values.dtype
        else:
            a, b, t, dtype = _large(source, q, total, max_gather)
    return float(_lerp(np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype), t))
