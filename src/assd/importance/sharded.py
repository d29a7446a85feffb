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

The sample estimator runs the per-sample engine's layer hooks on the
unsharded layers (:mod:`assd.importance.sharded_sample`): each layer group's
squares are added into its importance rows in rank order, so with one chunk
per batch it equals one process bit for bit too. Where some parameter cannot
take the hooks (e.g. used outside its layer), every parameter takes the
per-sample loop instead: the same exchange on batches of one sample, equal to
one process up to the order of float additions (paths ``loop``).

A rank whose shard has run out of batches runs its last batch again with
weight zero (FSDP needs every rank in every all-gather); zero squares change
no bit. Counts of samples and batches are all-reduced as in the
data-parallel path.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.distributed as dist
from torch import nn

from ..batches import forward, using_output_fn
from ..contract import BatchError, describe_fn, model_errors
from ..parameters import model_device, set_mode, trainable_parameters
from ..rule.sharded_dampening import is_sharded
from . import distributed as distributed_
from .estimators import Sums, default_memory_budget
from .objectives import add_, objective_value
from .sharded_rows import row_range, rows_from_every_rank
from .sharded_steps import Steps, comm_device, hook_sums

__all__ = ["is_sharded_model", "row_range", "sharded_importance", "sharded_sums", "wrap_like"]


def is_sharded_model(model: nn.Module) -> bool:
    """Whether any trainable parameter of ``model`` is a DTensor (FSDP2, inside a group)."""
    return any(is_sharded(p) for p in model.parameters() if p.requires_grad)


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
    n_samples = n_batches = first = 0
    found = None
    if estimator == "sample":  # the layer hooks; None: some parameter needs the loop
        with set_mode(model, train=train_mode):
            found = hook_sums(model, params, acc, data, objective=objective, loss_fn=loss_fn,
                              batch_fn=batch_fn, device=model_device(model),
                              budget=default_memory_budget(model_device(model)))  # fmt: skip
    if found is not None:
        n_samples, n_batches, first, paths = found
        return _counted(list(params), acc, n_samples, n_batches, first, paths)
    exchange = _Exchange(model, params, acc, objective)
    before = {n: p.grad for n, p in params.items()}
    try:
        with set_mode(model, train=train_mode):
            steps = Steps(data, batch_fn, estimator, model_device(model))
            for index, inputs, targets, weight, (samples, batches) in steps:
                with model_errors("importance pass", index):
                    value = objective_value(objective, forward(model, inputs), targets, loss_fn)
                    (value * weight if weight != 1 else value).backward()
                exchange.check_done(params, before)
                n_samples, n_batches = n_samples + samples, n_batches + batches
                first = first or (samples if batches else 0)
    finally:
        exchange.remove()
    paths = {n: "loop" for n in params} if estimator == "sample" else None
    return _counted(list(params), acc, n_samples, n_batches, first, paths)


def _counted(names, acc, n_samples, n_batches, first, paths) -> Sums:
    """This rank's rows with every rank's counts (all-reduced as the data-parallel path)."""
    counts = torch.tensor([n_samples, n_batches], dtype=torch.int64, device=comm_device())
    largest = torch.tensor([first], dtype=torch.int64, device=comm_device())
    dist.all_reduce(counts)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
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


class _Exchange:
    """Hooks that square each unsharded gradient's row blocks at their owner."""

    def __init__(self, model: nn.Module, params: dict, acc: dict, objective: str):
        self.acc, self.objective = acc, objective
        self.world, self.rank = dist.get_world_size(), dist.get_rank()
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
        """Send each rank its rows of ``grad``; add every rank's rows, squared, in rank
        order (this rank's own rows straight from ``grad``: nothing sent to itself)."""
        target = self.acc[name].view(-1)
        for piece in rows_from_every_rank(grad, world=self.world, rank=self.rank):
            add_([target], [piece], self.objective)

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
