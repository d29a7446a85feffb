"""Running under ``torch.distributed`` (e.g. launched with ``torchrun``).

Importance is a sum over samples (or batches) divided by their number, so it
distributes exactly: each process sums the gradients of its own shard, the
sums and the counts are all-reduced, and only then divided. The result equals
a single-process run up to the order of floating-point additions.

:func:`assd.compute_importance` does this by itself when a process group of
more than one process is initialised: it shards an :class:`assd.TensorData`
by whole batches (process ``r`` of ``w`` takes batches ``r, r + w, ...``, so
even the batch estimator sees the very same batches as one process would).
Any other iterable is taken to be this process's shard already, e.g. a
``DataLoader`` with a ``DistributedSampler``.

Example:
    >>> world_size(), is_main_process()
    (1, True)
"""

from __future__ import annotations

import itertools
import os

import torch
import torch.distributed as dist

from ..batches import TensorData
from .estimators import Sums

__all__ = [
    "all_reduce_sums",
    "collectively",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "rank",
    "resolve",
    "shard",
    "world_size",
]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Only the main process writes files and prints results."""
    return rank() == 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment, if any.

    Returns:
        True if a group of more than one process is now initialised.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return is_distributed()


def resolve(distributed: bool | None) -> bool:
    """Whether to split the work across processes: ``None`` means "if a group exists"."""
    if distributed is None:
        return is_distributed()
    if distributed and not is_distributed():
        raise ValueError(
            "distributed=True needs an initialised process group of more than one process: "
            "launch with torchrun and call assd.importance.distributed.init_from_env() first."
        )
    return bool(distributed)


class _Shard:
    """Every ``step``-th batch of ``data``, starting at batch ``first``."""

    def __init__(self, data: TensorData, first: int, step: int):
        self.data, self.first, self.step = data, first, step

    def __len__(self) -> int:
        return max(0, -(-(len(self.data) - self.first) // self.step))

    def __iter__(self):
        return itertools.islice(iter(self.data), self.first, None, self.step)


def shard(data, *, process: int | None = None, processes: int | None = None):
    """This process's share of ``data``.

    A :class:`~assd.TensorData` is split by whole batches, round robin, so
    the union of the shards is exactly the batches one process would see
    (shuffled data too: every process draws the same order). Anything else
    is returned unchanged: it is taken to be sharded already.

    Example:
        >>> data = TensorData(torch.arange(10.0), batch_size=3)
        >>> [x.tolist() for x, _ in shard(data, process=1, processes=2)]
        [[3.0, 4.0, 5.0], [9.0]]
    """
    process = rank() if process is None else process
    processes = world_size() if processes is None else processes
    if processes <= 1 or not isinstance(data, TensorData):
        return data
    return _Shard(data, process, processes)


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sums(sums: Sums) -> None:
    """Add up the sums and counts of every process, in place (first batch size: the largest)."""
    device = sums.tensors[0].device if sums.tensors else _device()
    counts = torch.tensor([sums.n_samples, sums.n_batches], dtype=torch.int64, device=device)
    size = torch.tensor([sums.batch_size], dtype=torch.int64, device=device)
    dist.all_reduce(counts)
    dist.all_reduce(size, op=dist.ReduceOp.MAX)
    for tensor in sums.tensors:  # same names in the same order on every process
        dist.all_reduce(tensor)
    sums.n_samples, sums.n_batches = (int(v) for v in counts.tolist())
    sums.batch_size = int(size.item())


def collectively(work):
    """Run ``work()`` on every process; if any process fails, all of them raise.

    Without this, a process whose shard holds a bad batch would raise while
    the others wait forever in the next all-reduce.
    """
    try:
        result, error = work(), None
    except Exception as caught:  # re-raised below, on this process and (as a note) on others
        result, error = None, caught
    failed = torch.tensor([0 if error is None else 1], device=_device())
    dist.all_reduce(failed, op=dist.ReduceOp.MAX)
    if error is not None:
        raise error
    if failed.item():
        raise RuntimeError(
            "another process failed while computing importance on its shard; its error "
            "message says why."
        )
    return result
