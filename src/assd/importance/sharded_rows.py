"""Each rank's rows of a whole tensor, sent to the rank that owns them.

An importance of an FSDP2 model is kept as row shards laid out like the
weights (``torch.chunk`` along dim 0). When every rank has formed a whole
tensor of its own batch (a gradient, or a layer's per-sample squares),
:func:`rows_from_every_rank` sends each rank its rows of every other rank's
tensor with one all-to-all and returns them by rank, this rank's own rows as
a view of its tensor (nothing is sent to itself). The owner then adds them in
rank order: with batches dealt round robin, that is one process's order.

Example (one process: the rows are the tensor itself):
    >>> import torch
    >>> rows_from_every_rank(torch.arange(6.0).view(3, 2), world=1, rank=0)
    [tensor([0., 1., 2., 3., 4., 5.])]
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

__all__ = ["row_range", "rows_from_every_rank"]


def row_range(rows: int, rank: int, world: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` of a dim-0 shard, as FSDP2 (``torch.chunk``) cuts them.

    Example:
        >>> [row_range(5, r, 4) for r in range(4)]
        [(0, 2), (2, 4), (4, 5), (5, 5)]
    """
    size = -(-rows // world)
    start = min(rank * size, rows)
    return start, min(start + size, rows)


def rows_from_every_rank(whole: torch.Tensor, *, world: int | None = None,
                         rank: int | None = None) -> list[torch.Tensor]:  # fmt: skip
    """This rank's rows of every rank's ``whole`` (same shape on all ranks), flat, by rank."""
    world = dist.get_world_size() if world is None else world
    rank = dist.get_rank() if rank is None else rank
    rows, per_row = whole.shape[0], math.prod(whole.shape[1:])
    bounds = [(a * per_row, b * per_row) for a, b in (row_range(rows, r, world)
                                                      for r in range(world))]  # fmt: skip
    flat = whole.contiguous().view(-1)
    start, stop = bounds[rank]
    if world == 1:
        return [flat]
    mine = stop - start
    others = [r for r in range(world) if r != rank]
    sent = flat[stop:] if start == 0 else flat[:start] if stop == flat.numel() else (
        torch.cat([flat[:start], flat[stop:]]))  # fmt: skip
    received = torch.empty(len(others) * mine, dtype=whole.dtype, device=whole.device)
    sizes_in = [b - a for a, b in bounds]
    sizes_in[rank] = 0
    sizes_out = [mine] * world
    sizes_out[rank] = 0
    dist.all_to_all_single(received, sent, sizes_out, sizes_in)
    pieces = dict(zip(others, received.view(len(others), mine), strict=True))
    pieces[rank] = flat[start:stop]
    return [pieces[r] for r in range(world)]
