"""ASSD's adaptive percentile and an exact percentile that never sorts.

ASSD picks its selection threshold alpha as the p-th percentile of the
relative importances, with ``p = 100 - ln(1 + 100 * n_forget / n_data)``.
The percentile here is NumPy's default (``method="linear"``) over the finite
values only, computed by streaming over chunks (for example one chunk per
parameter tensor), so the full vector of ratios never has to exist at once:

1. pass one counts the finite values and keeps a strided sample of them;
2. the sample brackets the two order statistics the interpolation needs;
3. pass two gathers only the values inside that bracket and counts those
   below it; ``numpy.partition`` (introselect, O(n)) places the two ranks.

The bracket is checked by counting, so the result is exact whatever the
sample looks like; an unlucky bracket is widened and the pass repeated.

Example:
    >>> import torch
    >>> exact_percentile(torch.tensor([1.0, float("nan"), 3.0, float("inf"), 2.0]), 50.0)
    2.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch

__all__ = ["exact_percentile", "forget_percentile", "percentile_of_chunks"]

_SAMPLE_SIZE = 1 << 16  # values kept by pass one to bracket the ranks
_GATHER_ALL_BELOW = 1 << 20  # below this many finite values, just gather them all


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


def exact_percentile(values: torch.Tensor, q: float) -> float:
    """The q-th percentile of the finite entries of ``values``.

    Equals ``numpy.percentile(v[np.isfinite(v)], q)`` (linear interpolation),
    computed in the dtype of ``values``. NaN and +-inf entries are dropped.
    """
    flat = values.detach().reshape(-1)
    return percentile_of_chunks(lambda: iter((flat,)), q, total=flat.numel())


def percentile_of_chunks(
    make_chunks: Callable[[], Iterable[torch.Tensor]], q: float, *, total: int
) -> float:
    """The q-th percentile of the finite values of all chunks together.

    Args:
        make_chunks: called once per pass (two or three times); each call
            must yield the same float tensors in the same order. Chunks may be
            computed on the fly, so only one needs to exist at a time.
        q: percentile in [0, 100].
        total: the number of elements over all chunks (finite or not).

    Returns:
        ``numpy.percentile`` of the concatenated finite values, as a float.
    """
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile must lie in [0, 100], got {q}.")
    count, sample, dtype = _count_and_sample(make_chunks, total)
    if count == 0:
        raise ValueError(
            "no finite values to take a percentile of: every relative importance is NaN or "
            "infinite (the reference importance is zero everywhere). Check that the data "
            "set is not empty and that the model's outputs depend on its parameters."
        )
    virtual = (count - 1) * (q / 100.0)  # NumPy's 'linear' virtual index
    low = math.floor(virtual)
    high = min(low + 1, count - 1)
    gamma = virtual - low
    a, b = _order_statistics(make_chunks, count, sample, low, high)
    return float(_lerp(np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype), gamma))


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """NumPy's own interpolation formula, so results agree to the last bit."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _count_and_sample(make_chunks, total: int) -> tuple[int, np.ndarray, np.dtype]:
    """Pass one: the finite count and a sorted sample of every stride-th value."""
    count, position, pieces, dtype = 0, 0, [], np.dtype(np.float32)
    stride = max(1, total // _SAMPLE_SIZE)
    for chunk in _as_flat(make_chunks()):
        dtype = np.dtype(np.float64 if chunk.dtype == torch.float64 else np.float32)
        count += int(torch.isfinite(chunk).sum())
        picked = chunk[(-position) % stride :: stride]
        pieces.append(picked[torch.isfinite(picked)].cpu())
        position += chunk.numel()
    sample = torch.cat(pieces).numpy() if pieces else np.empty(0, dtype)
    sample.sort()
    return count, sample, dtype


def _order_statistics(make_chunks, count, sample, low, high) -> tuple[float, float]:
    if count <= _GATHER_ALL_BELOW or sample.size < 16:
        return _partition(_gather(make_chunks, -math.inf, math.inf)[1], low, high, 0)
    margin = 4.0 / math.sqrt(sample.size)
    for _ in range(4):
        lo_t = _sample_value(sample, low / count - margin, -math.inf)
        hi_t = _sample_value(sample, high / count + margin, math.inf)
        below, window = _gather(make_chunks, lo_t, hi_t)
        if below <= low and below + window.size > high:
            return _partition(window, low, high, below)
        margin *= 4.0
    return _partition(_gather(make_chunks, -math.inf, math.inf)[1], low, high, 0)


def _sample_value(sample: np.ndarray, fraction: float, beyond: float) -> float:
    index = math.floor(fraction * sample.size)
    if index < 0 or index >= sample.size:
        return beyond
    return float(sample[index])


def _gather(make_chunks, lo_t: float, hi_t: float) -> tuple[int, np.ndarray]:
    """Count finite values below ``lo_t``; collect those in ``[lo_t, hi_t]``."""
    below, kept = 0, []
    for chunk in _as_flat(make_chunks()):
        finite = torch.isfinite(chunk)
        if lo_t > -math.inf:
            below += int((finite & (chunk < lo_t)).sum())
            finite &= chunk >= lo_t
        if hi_t < math.inf:
            finite &= chunk <= hi_t
        kept.append(chunk[finite].cpu())
    return below, torch.cat(kept).numpy()


def _partition(window: np.ndarray, low: int, high: int, offset: int) -> tuple[float, float]:
    ranks = sorted({low - offset, high - offset})
    window.partition(ranks)
    return window[low - offset], window[high - offset]


def _as_flat(chunks: Iterable[torch.Tensor]) -> Iterable[torch.Tensor]:
    for chunk in chunks:
        if not chunk.is_floating_point():
            raise ValueError(f"percentile needs floating-point values, got {chunk.dtype}.")
        if chunk.dtype not in (torch.float32, torch.float64):
            chunk = chunk.float()
        yield chunk.detach().reshape(-1)
