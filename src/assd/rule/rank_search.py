"""The exact percentile's selection: the two order statistics of a stream of value blocks.

The algorithm of :mod:`assd.rule.percentile` (its module docstring walks
through it): a strided sample brackets the ranks, a counting pass checks the
bracket and gathers the values inside it, and an oversized bracket is split at
sampled points until the piece holding the rank fits. A *source* yields NumPy
blocks and a strided sample (:mod:`assd.rule.value_blocks`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .blocks import Scratch

_SAMPLE_SIZE = 1 << 16  # values kept by pass one to bracket the ranks
_SPLIT_SAMPLE = 1 << 12  # values drawn inside an oversized bracket to split it


def _ranks(count: int, q: float) -> tuple[int, int, float]:
    """The two 0-based ranks NumPy's 'linear' method interpolates, and the weight."""
    if count == 0:
        raise ValueError(
            "no finite values to take a percentile of: every relative importance is NaN "
            "or infinite (the reference importance is zero everywhere). Check that the "
            "data set is not empty and that the model's outputs depend on its parameters."
        )
    virtual = (int(count) - 1) * (q / 100.0)  # a Python float, as NumPy computes it
    low = math.floor(virtual)
    return low, min(low + 1, count - 1), virtual - low


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """NumPy's own interpolation formula, so results agree to the last bit."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


class _Counts:
    """Finite and -inf counts (learnt by the first scan), the common dtype, the gather limit."""

    def __init__(self, dtype: np.dtype, cap: int):
        self.finite, self.neg_inf, self.dtype, self.cap = None, 0, dtype, cap


def _blocks(source, dtype: np.dtype) -> Iterator[np.ndarray]:
    """The source's blocks in one dtype (float32 blocks of a mixed source become float64)."""
    for block in source.blocks():
        yield block if block.dtype == dtype else block.astype(dtype)


def _gather_finite(source) -> np.ndarray:
    kept = [block[np.isfinite(block)] for block in source.blocks()]
    return np.concatenate(kept) if kept else np.empty(0, np.float32)


def _large(source, q: float, total: int, cap: int):
    """Ranks bracketed from a sample, then one counting-and-gathering pass (rarely more)."""
    sample, dtype = source.sample(_SAMPLE_SIZE, total)
    counts, size, fraction = _Counts(dtype, cap), max(sample.size, 1), q / 100.0
    margin = 4.0 * math.sqrt(max(fraction * (1 - fraction), 1e-6) / size) + 4.0 / size
    lo, hi = _bracket(sample, fraction - margin, fraction + margin)
    below, inside, window = _scan(source, counts, lo, hi)  # also counts the finite values
    low, high, t = _ranks(counts.finite, q)
    for attempt in range(4):
        if below <= low and high < below + inside:
            if window is not None:
                return (*_partition(window, low, high, below), t, dtype)
            bracket = (lo, hi, below, inside)
            break
        if attempt == 3:  # the sample misled us three times: bracket everything
            bracket = (-math.inf, math.inf, 0, counts.finite)
            break
        margin *= 4.0
        lo, hi = _bracket(sample, low / counts.finite - margin, high / counts.finite + margin)
        below, inside, window = _scan(source, counts, lo, hi)
    a, b = (_refine(source, counts, rank, *bracket) for rank in (low, high))
    return a, b, t, dtype


def _bracket(sample: np.ndarray, start: float, stop: float) -> tuple[float, float]:
    """Sample values at two fractions (-inf / +inf beyond the ends); partitions in place."""
    lo_i, hi_i = math.floor(start * sample.size), math.floor(stop * sample.size)
    inner = [i for i in (lo_i, hi_i) if 0 <= i < sample.size]
    if inner:
        sample.partition(inner)
    lo = float(sample[lo_i]) if 0 <= lo_i < sample.size else -math.inf
    hi = float(sample[hi_i]) if 0 <= hi_i < sample.size else math.inf
    return lo, hi


def _scan(source, counts: _Counts, lo: float, hi: float):
    """Count finite values below ``lo`` and inside ``[lo, hi]``; gather the inside ones
    unless there are more than ``counts.cap``. The first scan also counts the finite
    and -inf values."""
    first = counts.finite is None
    below, inside, finite, neg_inf, kept, scratch = 0, 0, 0, 0, [], Scratch()
    lo_b, hi_b = _finite_bounds(counts.dtype, lo, hi)
    lowest = -counts.dtype.type(np.finfo(counts.dtype).max)
    for block in _blocks(source, counts.dtype):
        mask = scratch.get("a", block.size, bool)
        if first:
            finite += int(np.count_nonzero(np.isfinite(block, out=mask)))
            neg_inf += int(np.count_nonzero(np.less(block, lowest, out=mask)))
        below += int(np.count_nonzero(np.less(block, lo_b, out=mask)))
        mask = _between(block, lo_b, hi_b, scratch)
        n = int(np.count_nonzero(mask))
        inside += n
        if n and inside <= counts.cap:
            kept.append(block[mask])
    if first:
        counts.finite, counts.neg_inf = finite, neg_inf
    below -= counts.neg_inf  # ``block < lo`` counted the -inf values too
    if inside > counts.cap:
        return below, inside, None
    return below, inside, (np.concatenate(kept) if kept else np.empty(0, counts.dtype))


def _refine(source, counts: _Counts, rank: int, lo: float, hi: float, below: int, inside: int):
    """The value of ``rank``, known to lie in ``[lo, hi]`` with ``below`` values under ``lo``.

    While the bracket holds too many values, split it at the values of a
    sample drawn inside it (each value ``v`` and the next float after it, so
    a run of ties becomes a piece of its own) and keep the piece holding the
    rank. Every round removes at least one sampled value, so it ends.
    """
    while inside > counts.cap and lo < hi:
        points = _split_points(source, counts.dtype, lo, hi, max(1, inside // _SPLIT_SAMPLE))
        pieces = _histogram(source, counts.dtype, lo, hi, points)
        ends = below + np.cumsum(pieces)
        k = int(np.searchsorted(ends, rank, side="right"))
        below, inside = int(ends[k] - pieces[k]), int(pieces[k])
        lo = lo if k == 0 else float(points[k - 1])
        hi = hi if k == len(points) else float(np.nextafter(points[k], -np.inf))
    if lo == hi:
        return lo
    _, _, window = _scan(source, counts, lo, hi)
    return _partition(window, rank, rank, below)[0]


def _split_points(source, dtype: np.dtype, lo: float, hi: float, stride: int) -> np.ndarray:
    picks, position, scratch = [], 0, Scratch()
    bounds = _finite_bounds(dtype, lo, hi)
    for block in _blocks(source, dtype):
        inside = block[_between(block, *bounds, scratch)]
        picks.append(inside[(-position) % stride :: stride])
        position += inside.size
    values = np.unique(np.concatenate(picks))
    points = np.unique(np.concatenate([values, np.nextafter(values, dtype.type(np.inf))]))
    return points[(points > lo) & (points <= hi)]


def _histogram(source, dtype: np.dtype, lo: float, hi: float, points: np.ndarray) -> np.ndarray:
    """How many finite values fall in ``[lo, p0), [p0, p1), ..., [p_last, hi]``."""
    counts, scratch = np.zeros(points.size + 1, np.int64), Scratch()
    bounds = _finite_bounds(dtype, lo, hi)
    for block in _blocks(source, dtype):
        inside = block[_between(block, *bounds, scratch)]
        where = np.searchsorted(points, inside, side="right")
        counts += np.bincount(where, minlength=points.size + 1)
    return counts


def _partition(window: np.ndarray, low: int, high: int, offset: int):
    """Values of ranks ``low`` and ``high = low or low + 1`` of ``window`` (ranks shifted by
    ``offset``). One introselect plus a min: NumPy's partition at two ranks is ~10x slower."""
    k = low - offset
    window.partition(k)
    return window[k], (window[k] if high == low else window[k + 1 :].min())


def _between(block: np.ndarray, lo, hi, scratch: Scratch) -> np.ndarray:
    mask, other = scratch.get("a", block.size, bool), scratch.get("b", block.size, bool)
    np.greater_equal(block, lo, out=mask)
    return np.logical_and(mask, np.less_equal(block, hi, out=other), out=mask)


def _finite_bounds(dtype: np.dtype, lo: float, hi: float):
    """``[lo, hi]`` in ``dtype``, infinite ends replaced by its largest floats, so that
    comparisons against them never admit an infinity."""
    big = float(np.finfo(dtype).max)
    return dtype.type(max(lo, -big)), dtype.type(min(hi, big))
