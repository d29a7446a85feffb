"""One layer's importance passed from rank to rank, so sums are added in one process's order.

The per-sample engine adds a chunk's squares into its sums in place, in
several fused operations (``addcmul_`` one sample at a time, ``index_add_``,
products added into the sums): the result depends on the sums it starts
from, not only on the chunk. To add exactly what one process adds, in its
order, rank ``r``'s chunk of step ``k`` (batch ``k * world + r``) must be
added to the sums that already hold the chunks of ranks ``0 .. r - 1``.

:class:`Chain` does that for one layer group (the parameters that share
records) at a time: its rows are gathered to rank 0, which adds its chunk,
sends the layer's sums to rank 1, which adds its own, and so on; the last
rank scatters the rows back to their owners. A rank holds the whole sums of
one layer group at a time, never of the whole model.

Example (one process: the chain is the identity around ``add``):
    >>> import torch
    >>> chain = Chain.__new__(Chain)
    >>> chain.world, chain.rank = 1, 0
    >>> shard = {"w": torch.ones(2, 2)}
    >>> chain.run(shard, {"w": (2, 2)}, lambda full: full["w"].add_(1.0))
    >>> shard["w"].tolist()
    [[2.0, 2.0], [2.0, 2.0]]
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

__all__ = ["Chain"]


class Chain:
    """Rank-ordered, in-place updates of row-sharded sums (see the module docstring)."""

    def __init__(self):
        self.world, self.rank = dist.get_world_size(), dist.get_rank()

    def run(self, shards: dict, shapes: dict, add) -> None:
        """Call ``add(full)`` on every rank in rank order, ``full`` the whole sums by name
        (each rank sees the previous rank's result); ``shards`` (this rank's rows) end
        holding their rows of the final sums."""
        names = list(shards)
        if self.world == 1:
            add(shards)
            return
        sizes = [math.prod(shapes[n]) for n in names]
        chunks = [-(-shapes[n][0] // self.world) * math.prod(shapes[n][1:]) for n in names]
        padded = sum(chunks)
        mine = torch.zeros(padded, dtype=torch.float32, device=shards[names[0]].device)
        offset = 0
        for name, chunk in zip(names, chunks, strict=True):
            local = shards[name].reshape(-1)
            mine[offset : offset + local.numel()] = local
            offset += chunk
        pieces = [torch.empty_like(mine) for _ in range(self.world)] if self.rank == 0 else None
        dist.gather(mine, pieces, dst=0)
        flat = torch.empty(sum(sizes), dtype=torch.float32, device=mine.device)
        if self.rank == 0:
            _assemble(flat, pieces, sizes, chunks, self.world)
            del pieces
        else:
            dist.recv(flat, src=self.rank - 1)
        full, start = {}, 0
        for name, size in zip(names, sizes, strict=True):
            full[name] = flat[start : start + size].view(shapes[name])
            start += size
        add(full)
        last = self.world - 1
        if self.rank < last:
            dist.send(flat, dst=self.rank + 1)
        out = [_cut(flat, sizes, chunks, r, self.world) for r in range(self.world)] if (
            self.rank == last) else None  # fmt: skip
        del full, flat
        dist.scatter(mine, out, src=last)
        offset = 0
        for name, chunk in zip(names, chunks, strict=True):
            local = shards[name].view(-1)
            local.copy_(mine[offset : offset + local.numel()])
            offset += chunk


def _assemble(flat, pieces, sizes, chunks, world) -> None:
    """The whole sums from every rank's padded rows (rank ``r`` holds chunk ``r``)."""
    start = offset = 0
    for size, chunk in zip(sizes, chunks, strict=True):
        for r in range(world):
            take = max(0, min(chunk, size - r * chunk))
            flat[start + r * chunk : start + r * chunk + take] = pieces[r][offset : offset + take]
        start, offset = start + size, offset + chunk


def _cut(flat, sizes, chunks, rank, world) -> torch.Tensor:
    """Rank ``rank``'s padded rows of the whole sums."""
    out = torch.zeros(sum(chunks), dtype=flat.dtype, device=flat.device)
    start = offset = 0
    for size, chunk in zip(sizes, chunks, strict=True):
        take = max(0, min(chunk, size - rank * chunk))
        out[offset : offset + take] = flat[start + rank * chunk : start + rank * chunk + take]
        start, offset = start + size, offset + chunk
    return out
