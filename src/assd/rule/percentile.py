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
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch

from .blocks import BLOCK, Scratch, gather_block, gather_numpy, numpy_flat, plan_blocks

__all__ = ["exact_percentile", "forget_percentile", "percentile_of_chunks", "ratio_percentile"]

MAX_GATHER = 1 << 22  # most values gathered at once (16 MiB of float32)
_SAMPLE_SIZE = 1 << 16  # values kept by pass one to bracket the ranks
_SPLIT_SAMPLE = 1 << 12  # values drawn inside an oversized bracket to split it


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


def _strided_sample(blocks, size: int, total: int) -> tuple[np.ndarray, np.dtype]:
    """Every stride-th finite value of the blocks (as float64), and their common dtype."""
    stride, position, pieces, dtype = max(1, total // size), 0, [], np.dtype(np.float32)
    for block in blocks:
        dtype = max(dtype, block.dtype)
        picked = block[(-position) % stride :: stride]
        pieces.append(picked[np.isfinite(picked)].astype(np.float64))
        position += block.size
    return (np.concatenate(pieces) if pieces else np.empty(0)), dtype


def _host(t: torch.Tensor) -> np.ndarray:
    """A NumPy view (CPU) or copy (other devices) of a float32/float64 tensor."""
    return t.detach().cpu().numpy()


class _Chunks:
    """Blocks of caller-made chunks (float32/float64; other floats are converted)."""

    def __init__(self, make_chunks: Callable[[], Iterable[torch.Tensor]]):
        self.make_chunks = make_chunks

    def blocks(self) -> Iterator[np.ndarray]:
        for chunk in self.make_chunks():
            if not chunk.is_floating_point():
                raise ValueError(f"percentile needs floating-point values, got {chunk.dtype}.")
            if chunk.dtype not in (torch.float32, torch.float64):
                chunk = chunk.float()
            flat = chunk.detach().reshape(-1)
            for start in range(0, flat.numel(), BLOCK):
                yield _host(flat[start : start + BLOCK])

    def sample(self, size: int, total: int) -> tuple[np.ndarray, np.dtype]:
        """A pass over the chunks keeping every stride-th finite value (as float64)."""
        return _strided_sample(self.blocks(), size, total)


class _Ratios:
    """Blocks of ``forget / data``, computed into one buffer that is reused."""

    def __init__(self, forget: Mapping[str, torch.Tensor], data: Mapping[str, torch.Tensor]):
        for name, f in forget.items():
            if name not in data or data[name].shape != f.shape:
                raise ValueError(f"forget and data importances differ for {name!r}.")
        self.f, self.d = list(forget.values()), [data[n] for n in forget]
        pairs = list(zip(self.f, self.d, strict=True))
        self.plan = plan_blocks(self.f, keys=[(f.dtype, d.dtype, f.device) for f, d in pairs])
        self.numpy = [_numpy_able(f) and _numpy_able(d) for f, d in pairs]
        self.f_np = [
            numpy_flat(f) if ok else None for f, ok in zip(self.f, self.numpy, strict=True)
        ]
        self.d_np = [
            numpy_flat(d) if ok else None for d, ok in zip(self.d, self.numpy, strict=True)
        ]

    def sample(self, size: int, total: int) -> tuple[np.ndarray, np.dtype]:
        """Every stride-th ratio, computed from strided views: no pass over everything."""
        stride, position = max(1, total // size), 0

        def picks():
            nonlocal position
            for f, d in zip(self.f, self.d, strict=True):
                start = (-position) % stride
                f, d = f.detach().reshape(-1), d.detach().reshape(-1).to(f.device)
                ratio = f[start::stride] / d[start::stride]
                position += f.numel()
                yield _host(ratio if ratio.dtype in _NUMPY_FLOATS else ratio.float())

        return _strided_sample(picks(), 1, 1)

    def blocks(self) -> Iterator[np.ndarray]:
        scratch = Scratch()
        for pieces in self.plan:
            if not self.numpy[pieces[0][0]]:  # another device or dtype: divide with torch
                f = {i: self.f[i].detach().reshape(-1) for i, _, _ in pieces}
                d = {i: self.d[i].detach().reshape(-1).to(f[i].device) for i, _, _ in pieces}
                ratio = gather_block(f, pieces) / gather_block(d, pieces)
                yield _host(ratio if ratio.dtype in _NUMPY_FLOATS else ratio.float())
                continue
            fs = gather_numpy(self.f_np, pieces, scratch, "f")
            ds = gather_numpy(self.d_np, pieces, scratch, "d")
            yield np.divide(fs, ds, out=scratch.get("r", fs.size, np.result_type(fs, ds)))


_NUMPY_FLOATS = (torch.float32, torch.float64)


def _numpy_able(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in _NUMPY_FLOATS
