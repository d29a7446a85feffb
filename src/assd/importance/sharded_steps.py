"""Steps over the ranks' data shards in lockstep, for the importance of an FSDP2 model.

FSDP2 all-gathers every unit's weights on every forward and backward, so all
ranks must run the same number of forwards. :class:`Steps` deals this rank's
batches (or single samples) and, once its shard has run out while others
have work, repeats its last step with weight 0. :func:`hook_sums` drives the
per-sample engine's layer hooks (:mod:`assd.importance.sharded_sample`) in
chunks of the same rows one process would use, in lockstep too.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..batches import TensorData, batch_size_of, split_batch, to_device
from ..contract import model_errors
from ..parameters import all_finite
from . import distributed as distributed_
from .persample.fallback import slice_batch

__all__ = ["Steps", "comm_device", "hook_sums"]


def hook_sums(model, params: dict, shards: dict, data, *, objective: str, loss_fn, batch_fn,
              device, budget: int):  # fmt: skip
    """Add this rank's per-sample squares, through the layer hooks, into ``shards``.

    Returns ``(samples, batches, first batch size, paths)`` counted on this
    rank, or None when some parameter cannot take the hooks (nothing added:
    the caller runs the per-sample loop instead).
    """
    from .sharded_sample import ShardedSampleEngine, live_parameters

    steps = iter(Steps(data, batch_fn, "batch", device))
    first = next(steps, None)
    if first is None:
        return 0, 0, 0, {}
    index, x, y, _, _ = first
    with model_errors("importance pass", index):
        live = live_parameters(model, list(params), slice_batch(x, y, 0, 1)[0])
        engine = ShardedSampleEngine(model, params, live, shards, objective=objective,
                                     loss_fn=loss_fn, budget=budget)  # fmt: skip
        if not engine.probe(x, y):
            return None
    rows, check = engine._hook_rows(), engine.first_rows()  # as one process cuts them
    n_samples = n_batches = largest = 0
    lead = dist.get_rank() == 0  # its first batch is batch 0, split as one process splits it
    for step, (index, x, y, weight, (samples, batches)) in enumerate([first, *steps]):
        size = batch_size_of(x)
        cuts = _cuts(size, rows, check if (lead and step == 0) else rows)
        if lead and step == 0:  # its first chunk was the check's, and is added already
            cuts, repeat = cuts[1:], cuts[0]
        count = torch.tensor([len(cuts)], dtype=torch.int64, device=comm_device())
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        for i in range(int(count.item())):
            start, stop = cuts[min(i, len(cuts) - 1)] if cuts else repeat
            with model_errors("importance pass", index):
                engine.chunk(*slice_batch(x, y, start, stop - start),
                             active=weight != 0 and i < len(cuts))  # fmt: skip
        n_samples, n_batches = n_samples + samples, n_batches + batches
        largest = largest or (samples if batches else 0)
    return n_samples, n_batches, largest, dict(engine.paths)


def _cuts(size: int, rows: int, first: int) -> list[tuple[int, int]]:
    """The engine's chunks of a batch: ``first`` rows, then ``rows`` at a time.

    Example:
        >>> _cuts(10, 4, 3), _cuts(3, 4, 4)
        ([(0, 3), (3, 7), (7, 10)], [(0, 3)])
    """
    cuts, start, take = [], 0, first
    while start < size:
        cuts.append((start, min(start + take, size)))
        start, take = start + take, rows
    return cuts


class Steps:
    """This rank's steps (batches, or single samples), in lockstep with the other ranks.

    Yields ``(batch index, inputs, targets, weight, (samples, batches))``: a
    batch counts its samples on its first step. Once this rank has no work
    left while others have, its last step comes again with weight 0, counting
    nothing. Every step all-reduces two flags: work left, and a bad batch.
    """

    def __init__(self, data, batch_fn, estimator: str, device):
        self.data, self.batch_fn, self.estimator, self.device = data, batch_fn, estimator, device

    def __iter__(self):
        own, last = self._own(distributed_.shard(self.data)), None
        while True:
            error, step = None, None
            try:
                step = next(own, None)
                if step is None and last is None and isinstance(self.data, TensorData):
                    last = next(self._own(self.data), None)  # an empty shard: any batch, weight 0
            except Exception as caught:  # re-raised below, on every rank
                error = caught
            starved = step is None and last is None
            flags = [step is not None, error is not None, starved]
            flags = torch.tensor(flags, dtype=torch.int64, device=comm_device())
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            if error is not None:
                raise error
            if flags[1]:
                raise RuntimeError("another process met a bad batch in its data shard; its "
                                   "error message says why.")  # fmt: skip
            if not flags[0]:
                return
            if flags[2]:
                raise ValueError(
                    "a process's data shard is empty while others have batches; give every "
                    "process at least one batch (or pass a TensorData, which is split evenly)."
                )
            last = step or (*last[:3], 0.0, (0, 0))
            yield last

    def _own(self, data):
        for index, batch in enumerate(data):
            inputs, targets = split_batch(batch, self.batch_fn)
            size = batch_size_of(inputs)
            if size == 0:
                continue
            _check_finite(inputs, index)
            inputs, targets = to_device(inputs, self.device), to_device(targets, self.device)
            if self.estimator == "batch":
                yield index, inputs, targets, 1.0, (size, 1)
                continue
            for row in range(size):  # the batch is counted on its first sample
                x, y = slice_batch(inputs, targets, row, 1)
                yield index, x, y, 1.0, (size, 1) if row == 0 else (0, 0)


def _check_finite(inputs, index: int) -> None:
    from ..batches import check_finite_inputs

    leaves = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    if not all(all_finite(t) for t in leaves if isinstance(t, torch.Tensor)
               and t.is_floating_point()):  # fmt: skip
        check_finite_inputs(inputs, index)


def comm_device() -> torch.device:
    """Where tensors for collectives live: the current GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
