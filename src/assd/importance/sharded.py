"""Importance of a model sharded with FSDP2 (``torch.distributed.fsdp.fully_shard``).

Every rank passes over its own data shard (:func:`assd.importance.distributed.shard`:
whole batches, round robin) and ends with its rows of each importance only,
a DTensor laid out like the parameter. No rank ever holds a full-model
importance or a full-model gradient.

How the squares are taken before anything is added across ranks: FSDP2
unshards one unit at a time for forward and backward. A hook on each
unsharded parameter takes its gradient the moment autograd has accumulated
it (this rank's batch only) and clears it, so FSDP's own reduce-scatter of
gradients never runs. The gradient is cut into the row blocks the ranks own
and sent with one all-to-all per parameter; the owner then adds, in rank
order, the square (loss) or absolute value (loss-free) of each rank's block.
With batches dealt round robin, step ``k`` of rank ``r`` is batch
``k * world + r``: the owner adds them in the very order one process would,
with the same arithmetic, so the batch estimator's importance, and with it
alpha and the dampened weights, equal a single process's bit for bit.

The sample estimator runs the same exchange on batches of one sample (one
backward per sample: the definition, the ``loop`` path of
:mod:`assd.importance.persample`); the single-process per-sample engine's
layer rules are not used under sharding, so results agree with one process
up to the order of float additions.

A rank whose shard has run out of batches runs its last batch again with
weight zero (FSDP needs every rank in every all-gather); zero squares change
no bit. Counts of samples and batches are all-reduced as in the
data-parallel path.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.distributed as dist
from torch import nn

from ..batches import TensorData, batch_size_of, forward, split_batch, to_device, using_output_fn
from ..contract import BatchError, describe_fn, model_errors
from ..parameters import all_finite, model_device, set_mode, trainable_parameters
from ..rule.sharded_dampening import is_sharded
from . import distributed as distributed_
from .estimators import Sums
from .objectives import add_, objective_value
from .persample.fallback import slice_batch

__all__ = ["is_sharded_model", "row_range", "sharded_importance", "sharded_sums", "wrap_like"]


def is_sharded_model(model: nn.Module) -> bool:
    """Whether any trainable parameter of ``model`` is a DTensor (FSDP2, inside a group)."""
    return any(is_sharded(p) for p in model.parameters() if p.requires_grad)


def row_range(rows: int, rank: int, world: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` of a dim-0 shard, as FSDP2 (``torch.chunk``) cuts them.

    Example:
        >>> [row_range(5, r, 4) for r in range(4)]
        [(0, 2), (2, 4), (4, 5), (5, 5)]
    """
    size = -(-rows // world)
    start = min(rank * size, rows)
    return start, min(start + size, rows)


def wrap_like(local: torch.Tensor, param) -> torch.Tensor:
    """A DTensor with ``param``'s mesh, placements and global shape around ``local``."""
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(local, param.device_mesh, param.placements, run_check=False,
                              shape=param.shape, stride=param.stride())  # fmt: skip


def sharded_importance(model: nn.Module, data, *, objective: str, estimator: str,
                       loss_fn, batch_fn, train_mode: bool, fingerprint: bool, output_fn,
                       reference, label: str):  # fmt: skip
    """:func:`~assd.compute_importance` on an FSDP2 model: DTensors laid out like the weights."""
    from ..store.sharded_fingerprint import sharded_fingerprint
    from .core import Importance

    params = distributed_.collectively(lambda: trainable_parameters(model))  # all or none raise
    stamp = sharded_fingerprint(model) if fingerprint else None
    try:
        with using_output_fn(output_fn):
            sums = sharded_sums(
                model,
                params,
                data,
                objective=objective,
                estimator=estimator,
                loss_fn=loss_fn,
                batch_fn=batch_fn,
                train_mode=train_mode,
            )
    except BatchError as error:
        raise error.named(f"importance on {label}") from error.error
    local = sums.finish(estimator)
    return Importance(
        tensors={n: wrap_like(t, params[n]) for n, t in local.items()},
        objective=objective, estimator=estimator, n_samples=sums.n_samples,
        n_batches=sums.n_batches, batch_size=sums.batch_size, train_mode=train_mode,
        fingerprint=stamp,
        loss=(describe_fn(loss_fn) or "cross_entropy") if objective == "loss" else None,
        reference=reference, paths=sums.paths,
    )  # fmt: skip


def sharded_sums(model: nn.Module, params: dict, data, *, objective: str, estimator: str,
                 loss_fn, batch_fn, train_mode: bool) -> Sums:  # fmt: skip
    """This rank's rows of the summed squares (or absolute values), all ranks' counts."""
    _check_layout(params)
    acc = {n: torch.zeros(p.to_local().shape, dtype=torch.float32, device=p.to_local().device)
           for n, p in params.items()}  # fmt: skip
    exchange = _Exchange(model, params, acc, objective)
    before = {n: p.grad for n, p in params.items()}
    n_samples = n_batches = first = 0
    try:
        with set_mode(model, train=train_mode):
            steps = _Steps(data, batch_fn, estimator, model_device(model))
            for index, inputs, targets, weight, (samples, batches) in steps:
                with model_errors("importance pass", index):
                    value = objective_value(objective, forward(model, inputs), targets, loss_fn)
                    (value * weight if weight != 1 else value).backward()
                exchange.check_done(params, before)
                n_samples, n_batches = n_samples + samples, n_batches + batches
                first = first or (samples if batches else 0)
    finally:
        exchange.remove()
    counts = torch.tensor([n_samples, n_batches], dtype=torch.int64, device=_comm_device())
    largest = torch.tensor([first], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(counts)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    names = list(params)
    paths = {n: "loop" for n in names} if estimator == "sample" else None
    total_samples, total_batches = (int(v) for v in counts.tolist())
    return Sums(names, [acc[n] for n in names], total_samples, total_batches,
                int(largest.item()), paths)  # fmt: skip


def _check_layout(params: dict) -> None:
    world, rank = dist.get_world_size(), dist.get_rank()
    for name, p in params.items():
        if not is_sharded(p):
            raise ValueError(
                f"parameter {name!r} is not sharded while others are: apply fully_shard to "
                "the whole model (the root module too), so that every trainable parameter is "
                "a DTensor."
            )
        placements = [type(x).__name__ for x in p.placements]
        shard0 = placements == ["Shard"] and p.placements[0].dim == 0
        rows = p.shape[0] if p.dim() else 0
        if not shard0 or p.device_mesh.size() != world or p.dim() == 0 or (
            tuple(p.to_local().shape[:1]) != (row_range(rows, rank, world)[1]
                                              - row_range(rows, rank, world)[0],)):  # fmt: skip
            raise ValueError(
                f"parameter {name!r} is not sharded as FSDP2's fully_shard does by default "
                f"(placements {placements} on a mesh of {p.device_mesh.size()} of {world} "
                "ranks); sharded importance needs Shard(0) over one mesh of every rank."
            )


class _Steps:
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
            flags = torch.tensor(flags, dtype=torch.int64, device=_comm_device())
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


class _Exchange:
    """Hooks that square each unsharded gradient's row blocks at their owner."""

    def __init__(self, model: nn.Module, params: dict, acc: dict, objective: str):
        self.acc, self.objective = acc, objective
        self.world, self.rank = dist.get_world_size(), dist.get_rank()
        self.shapes = {n: tuple(p.shape) for n, p in params.items()}
        self.hooked: dict[int, tuple] = {}
        self.names = set(params)
        self.units = {m: prefix for prefix, m in model.named_modules() if _is_unit(m)}
        self.handles = [unit.register_forward_pre_hook(self._unsharded) for unit in self.units]

    def _unsharded(self, module: nn.Module, _args) -> None:
        """Forward pre-hook of an FSDP unit (FSDP2 has just unsharded its parameters):
        hook the live, unsharded parameters, once each."""
        prefix = self.units[module]
        for key, p in module.named_parameters():
            name = f"{prefix}.{key}" if prefix else key
            if name not in self.names or is_sharded(p) or id(p) in self.hooked:
                continue
            handle = p.register_post_accumulate_grad_hook(partial(self._take, name))
            self.hooked[id(p)] = (handle, p)

    def _take(self, name: str, p: torch.Tensor) -> None:
        grad, p.grad = p.grad, None  # ours alone: FSDP finds no gradient to reduce
        self.add(name, grad.detach())

    def add(self, name: str, grad: torch.Tensor) -> None:
        """Send each rank its rows of ``grad``; add every rank's rows, squared, in rank order."""
        rows, mine = self.shapes[name][0], self.acc[name]
        per_row = math.prod(self.shapes[name][1:])
        sizes = [(b - a) * per_row for a, b in (row_range(rows, r, self.world)
                                                for r in range(self.world))]  # fmt: skip
        received = torch.empty(self.world * mine.numel(), dtype=grad.dtype, device=grad.device)
        dist.all_to_all_single(received, grad.contiguous().view(-1),
                               [mine.numel()] * self.world, sizes)  # fmt: skip
        flat = mine.view(-1)
        for piece in received.view(self.world, -1):
            add_([flat], [piece], self.objective)

    def check_done(self, params: dict, before: dict) -> None:
        """Every parameter's gradient went through a hook (none left for FSDP to reduce)."""
        for name, p in params.items():
            if p.grad is not None and p.grad is not before.get(name):
                raise ValueError(
                    f"the gradient of {name!r} did not pass through the sharded importance "
                    "hooks: its FSDP unit did not run a forward (is the parameter used outside "
                    "the module wrapped by fully_shard that owns it?). Wrap the module that "
                    "uses it."
                )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for handle, _ in self.hooked.values():
            handle.remove()


def _is_unit(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def _check_finite(inputs, index: int) -> None:
    from ..batches import check_finite_inputs

    leaves = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    if not all(all_finite(t) for t in leaves if isinstance(t, torch.Tensor)
               and t.is_floating_point()):  # fmt: skip
        check_finite_inputs(inputs, index)


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
