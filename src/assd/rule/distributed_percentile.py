"""ASSD's percentile over values spread across processes: counts travel, values never do.

Under FSDP2 every rank holds a shard of each importance, so the ratios
``I_Df / I_D`` exist only piecewise. The percentile of all of them is found
by a radix selection on the floats' bit patterns:

1. every rank maps its finite values to order-preserving unsigned keys and
   histograms the top 16 bits (65,536 counts); the histograms are
   all-reduced, which gives the global count and the 16-bit bucket holding
   each of the two ranks NumPy's linear interpolation needs;
2. the next 16 bits are histogrammed inside those buckets only, and so on:
   two passes decide a float32 value exactly, four a float64 one.

Each pass recomputes the local ratios block by block (no ratio vector is
stored) and all-reduces 65,536 integers per rank sought. The two order
statistics are then interpolated with the single-process formula, so alpha
is bit-identical to :func:`assd.rule.percentile.ratio_percentile` on the
same importances, whatever the world size and however uneven the shards.

With no process group of more than one process, the functions here reduce
over this process alone (the same answer as the single-process functions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist

from .rank_search import _lerp, _ranks
from .value_blocks import _Chunks, _Ratios

__all__ = ["local_tensor", "sharded_percentile_of_chunks", "sharded_ratio_percentile"]

_BITS = 16  # key bits decided per pass
_BINS = 1 << _BITS


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor (a view of its memory), or ``t`` itself."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def sharded_ratio_percentile(
    forget: Mapping[str, torch.Tensor], data: Mapping[str, torch.Tensor], q: float
) -> float:
    """The q-th percentile of the finite ratios ``forget[n] / data[n]`` over every rank's shards.

    Args:
        forget, data: importances by name: DTensors (their local shards are
            read) or this rank's plain shards, same names and shapes on both.
        q: percentile in [0, 100].

    Returns:
        ``numpy.percentile`` (linear) of all ranks' finite ratios pooled; the
        same float on every rank.
    """
    f = {n: local_tensor(t).detach() for n, t in forget.items()}
    d = {n: local_tensor(data[n]).detach() for n in forget}
    return _select(_Ratios(f, d), q)


def sharded_percentile_of_chunks(
    make_chunks: Callable[[], Iterable[torch.Tensor]], q: float
) -> float:
    """The q-th percentile of the finite values of every rank's chunks together.

    ``make_chunks`` is called once per pass and must yield the same tensors
    each time; a rank may yield nothing (an empty shard).
    """
    return _select(_Chunks(make_chunks), q)


def _select(source, q: float) -> float:
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile must lie in [0, 100], got {q}.")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dtype = _common_dtype(source)
        width = dtype.itemsize * 8
        levels, shift = width // _BITS, width - _BITS
        counts = _histograms(source, dtype, shift, [None])[0]
        low, high, t = _ranks(int(counts.sum()), q)
        sought = {low: (0, None), high: (0, None)}  # rank -> (values below prefix, prefix)
        for level in range(levels):
            if level:
                prefixes = sorted({p for _, p in sought.values()})
                found = _histograms(source, dtype, shift, prefixes)
                counts = dict(zip(prefixes, found, strict=True))
            for rank, (below, prefix) in sought.items():
                hist = counts if level == 0 else counts[prefix]
                ends = below + np.cumsum(hist)
                bucket = int(np.searchsorted(ends, rank, side="right"))
                start = below if bucket == 0 else int(ends[bucket - 1])
                key = bucket if prefix is None else (prefix << _BITS) | bucket
                sought[rank] = (start, key)
            shift -= _BITS
    a, b = (_from_key(sought[r][1], dtype) for r in (low, high))
    return float(_lerp(np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype), t))


def _common_dtype(source) -> np.dtype:
    """float64 if any rank's values are float64, else float32 (as the single-process code)."""
    if isinstance(source, _Ratios):  # known from the tensors: no pass needed
        widest = max((t.element_size() if t.dtype == torch.float64 else 4
                      for t in source.f + source.d), default=4)  # fmt: skip
    else:
        widest = max((block.dtype.itemsize for block in source.blocks()), default=4)
    size = torch.tensor([widest], dtype=torch.int64, device=_device())
    _all_reduce(size, dist.ReduceOp.MAX if _grouped() else None)
    return np.dtype(np.float64 if int(size.item()) == 8 else np.float32)


def _histograms(source, dtype: np.dtype, shift: int, prefixes: list) -> list[np.ndarray]:
    """Counts of the next 16 key bits, over all ranks, among keys starting with each prefix."""
    local = np.zeros((len(prefixes), _BINS), np.int64)
    for keys in _keys(source, dtype):
        for row, prefix in enumerate(prefixes):
            picked = keys if prefix is None else keys[(keys >> (shift + _BITS)) == prefix]
            digits = ((picked >> shift) & (_BINS - 1)).astype(np.intp)
            local[row] += np.bincount(digits, minlength=_BINS)
    total = torch.from_numpy(local).to(_device())
    _all_reduce(total, dist.ReduceOp.SUM if _grouped() else None)
    return list(total.cpu().numpy())


def _keys(source, dtype: np.dtype) -> Iterator[np.ndarray]:
    """Order-preserving unsigned keys of the finite values, block by block."""
    unsigned = np.uint32 if dtype.itemsize == 4 else np.uint64
    sign = unsigned(1 << (dtype.itemsize * 8 - 1))
    for block in source.blocks():
        block = block if block.dtype == dtype else block.astype(dtype)
        bits = block[np.isfinite(block)].view(unsigned)
        negative = (bits & sign) != 0
        yield np.where(negative, ~bits, bits | sign)


def _from_key(key: int, dtype: np.dtype):
    unsigned = np.uint32 if dtype.itemsize == 4 else np.uint64
    sign = 1 << (dtype.itemsize * 8 - 1)
    mask = (1 << (dtype.itemsize * 8)) - 1
    bits = key ^ sign if key & sign else ~key & mask
    return np.array([bits], dtype=unsigned).view(dtype)[0]


def _grouped() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(tensor: torch.Tensor, op) -> None:
    if op is not None:
        dist.all_reduce(tensor, op=op)


def _device() -> torch.device:
    if _grouped() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
