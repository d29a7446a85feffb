"""Scoring a model sharded with FSDP2: every process scores its own batches.

Under FSDP2 every forward all-gathers the weights on every process, so all
of them must run the same number of forwards. :func:`sharded_tally` deals the
batches of a :class:`~assd.TensorData` round robin, as the importance pass does
(:class:`~assd.importance.sharded_steps.Steps`; a process out of batches repeats
one, counted nowhere). Other iterables are scored whole on every rank. Each
batch is tallied on its own and the tallies are gathered and merged in batch
order, so the figures equal one process's bit
for bit (loss sums in float64 added in the same order; the per-row losses
and the per-example outputs in that order too), while each process runs about
``1 / world`` of the forwards.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..batches import forward

__all__ = ["data_parallel", "sharded_tally"]


def data_parallel(model, data) -> bool:
    """Whether ``model`` is sharded with FSDP2 inside a process group of several ranks and
    ``data`` is a :class:`~assd.TensorData`, which is split here. Any other iterable is
    scored whole on every rank, as before: an evaluation ``DataLoader`` usually holds the
    same rows on every rank, and taking it for a shard would count each row once per rank."""
    from ..batches import TensorData

    if not isinstance(data, TensorData):
        return False
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return False
    from ..importance.sharded import is_sharded_model

    return is_sharded_model(model)


def sharded_tally(model, data, name: str, *, batch_fn, output_fn, task, loss_fn, metric_fn,
                  record, new_tally, resolve):  # fmt: skip
    """Every process's tallies of its own batches, merged in batch order: ``(tally, task)``.
    ``new_tally()`` and ``resolve(task, out, y, name)``: the scoring module's own."""
    from ..importance.sharded_steps import Steps

    world, rank = dist.get_world_size(), dist.get_rank()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    mine, resolved = [], None
    for index, inputs, y, weight, _ in Steps(data, batch_fn, "batch", device):
        if y is None:
            raise ValueError(f"evaluation set {name!r} has no targets; give labelled rows.")
        out = forward(model, inputs, output_fn=output_fn).float()
        if weight == 0:  # a repeat that only keeps FSDP's all-gathers in step
            continue
        resolved = resolve(task if resolved is None else resolved, out, y, name)
        tally = new_tally()
        tally.add(resolved, out, y, loss_fn, metric_fn)
        wanted = record is not None and out.dim() == 2 and not y.is_floating_point()
        kept = (out.detach().cpu(), y.cpu().long()) if wanted else None
        mine.append((index * world + rank, resolved, tally, kept))
    everyone = [None] * world
    dist.all_gather_object(everyone, mine)
    merged, found = new_tally(), None
    for _, batch_task, tally, kept in sorted((e for part in everyone for e in part),
                                             key=lambda e: e[0]):  # fmt: skip
        found = found or batch_task
        merged.merge(tally)
        if kept is not None:
            record.append(kept)
    return merged, found or task
