"""The per-sample engine's layer hooks on a model sharded with FSDP2.

:class:`ShardedSampleEngine` is :class:`~assd.importance.persample.engine.SampleEngine`
run on the live, unsharded parameters FSDP2 swaps in while a unit runs its
forward and backward (the same parameter objects every time): the hooks
record each layer's input and output gradient as in one process. After the
backward, the squares are formed one layer group (the parameters sharing
records) at a time and added into that group's importance rows, in rank
order, by :class:`~assd.importance.sharded_chain.Chain`: with batches dealt
round robin and one chunk per batch, every operation and its order is one
process's, and the importance equals it bit for bit. No rank ever holds
a full-model importance or gradient.

The first chunk's check (hooks against autograd's batch gradient) runs on
each rank's first batch before the pass, one parameter at a time (a hook on
each unsharded parameter takes its gradient as autograd accumulates it), and
a parameter rejected by any rank is rejected by all. Rank 0's checked chunk
is one process's first chunk, so its squares are kept and the pass goes on
from the rest of batch 0; the other ranks' are not kept. If any parameter cannot take the hooks, the
caller falls back to the per-sample loop (:mod:`assd.importance.sharded`).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.distributed as dist
from torch import nn

from ..batches import batch_size_of, forward
from .persample.accumulate import add_hooked
from .persample.engine import SampleEngine
from .persample.fallback import slice_batch
from .persample.plan import plan
from .persample.records import same_total
from .sharded_chain import Chain

__all__ = ["ShardedSampleEngine", "live_parameters"]


def live_parameters(model: nn.Module, names, inputs) -> dict:
    """The unsharded parameters FSDP2 swaps in during forward, by name (one forward
    without gradients on ``inputs``; FSDP2 keeps the same objects from then on)."""
    from torch.distributed.fsdp import FSDPModule

    wanted, found = set(names), {}

    def hook(prefix, module, _args):
        for key, p in module.named_parameters():
            name = f"{prefix}.{key}" if prefix else key
            if name in wanted and name not in found and not _is_dtensor(p):
                found[name] = p

    handles = [m.register_forward_pre_hook(partial(hook, prefix))
               for prefix, m in model.named_modules() if isinstance(m, FSDPModule)]  # fmt: skip
    try:
        with torch.no_grad():
            forward(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    missing = wanted - set(found)
    if missing:
        raise ValueError(f"parameters {sorted(missing)[:3]} were never unsharded by a forward: "
                         "apply fully_shard to the modules that use them.")  # fmt: skip
    return {n: found[n] for n in names}


class ShardedSampleEngine(SampleEngine):
    """Per-sample squares of an FSDP2 model, added into row shards (module docstring).

    Args:
        model: the FSDP2 model, in eval mode.
        sharded: the trainable (sharded) parameters by name.
        live: their unsharded counterparts (:func:`live_parameters`).
        shards: this rank's importance rows by name, added into in place.
    """

    def __init__(self, model, sharded: dict, live: dict, shards: dict, *, objective: str,
                 loss_fn=None, budget: int):  # fmt: skip
        super().__init__(model, live, objective=objective, loss_fn=loss_fn, budget=budget)
        self.sharded, self.shards, self.chain = sharded, shards, Chain()
        self.shapes = {n: tuple(p.shape) for n, p in sharded.items()}
        self.active = True  # False on a rank repeating its last chunk with weight 0

    # -- planning and the check ---------------------------------------------------------

    def _plan(self) -> None:
        """The plan made on the parameters the modules hold now, its parameter ids moved
        to the live ones."""
        held = {n: p for n, p in self.model.named_parameters() if n in self.sharded}
        found = plan(self.model, held)  # sharded, or unsharded where FSDP2 keeps the root so
        live_of = {id(held[n]): self.params[n] for n in held}
        self.owned, self.rest = found.owned, found.rest
        self.reasons.update(found.reasons)
        self._watched = {id(live_of[k]): (live_of[k], owner)
                         for k, (_, owner) in found.watched.items()}  # fmt: skip
        self._attention = {id(live_of[k]): m for k, m in found.attention.items()}
        self._unwatched = found.unwatched

    def probe(self, inputs, targets) -> bool:
        """Decide every parameter's path on this rank's first chunk, agreed by all ranks;
        True if all of them take the hooks. Then rank 0's chunk (the first rows of batch 0,
        which one process checks and keeps the same way) is added to the importance; the
        other ranks' are not (one process does not cut their batches there)."""
        self._plan()
        rows = self.first_rows() if self.owned else 1
        inputs, targets = slice_batch(inputs, targets, 0, rows)
        rows = batch_size_of(inputs)
        records, value = self._record(inputs, targets, first=True)
        hooked = list(dict.fromkeys(n for kn in self.owned.values() for _, n in kn))
        bad, kinds = {}, {}
        if value is None:
            bad = dict.fromkeys(hooked, "loss_fn is not the mean or sum of per-sample losses")
        for record in records:
            if not record.valid(rows):
                for _, name in self.owned[record.module]:
                    bad[name] = "its layer was called in a way the hooks cannot read"
        check = partial(self._check, records, rows, bad, kinds)
        taken = set()

        def take(name, grad):
            taken.add(name)
            if name in hooked and name not in bad:
                check(name, grad)

        def clear(p):
            p.grad = None  # FSDP finds no gradient to reduce

        handles = [h for n, p in self.params.items()
                   for h in (p.register_hook(partial(take, n)),
                             p.register_post_accumulate_grad_hook(clear))]  # fmt: skip
        try:
            if value is not None and value.requires_grad:
                value.backward()
        finally:
            for handle in handles:
                handle.remove()
        for name in hooked:
            if name not in taken and name not in bad:
                check(name, None)
        flags = torch.tensor([n in bad for n in hooked], dtype=torch.int64)
        if flags.numel():
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        for name, flag in zip(hooked, flags.tolist(), strict=True):
            if flag:
                self._reject(name, bad.get(name, "rejected on another process's first chunk"))
        self._settle({n: kinds.get(n, "unused") for n in hooked if n not in self.rest})
        if not self.rest:  # rank 0's chunk is one process's first chunk: its squares count
            self.active = dist.get_rank() == 0
            self._accumulate(None, records, rows)
            self.active = True
        return not self.rest

    def _check(self, records, rows: int, bad: dict, kinds: dict, name: str, total) -> None:
        """One parameter's hook sum over the chunk against autograd's gradient ``total``."""
        owners = {m: [(k, n) for k, n in kn if n == name] for m, kn in self.owned.items()}
        owners = {m: kn for m, kn in owners.items() if kn}
        mine = [r for r in records if r.module in owners]
        scratch = {name: torch.zeros(self.shapes[name], dtype=torch.float32)}
        sums, found = {}, {}
        add_hooked(scratch, mine, owners, self.objective, rows, sums=sums, kinds=found)
        if not same_total(sums.get(name), total):
            bad[name] = self._unwatched.get(name, "also used outside its layer")
        else:
            kinds[name] = found.get(name, "unused")

    # -- the pass ---------------------------------------------------------------------------

    def chunk(self, inputs, targets, *, active: bool) -> None:
        """Add one chunk's per-sample squares into the shards (all ranks in lockstep)."""
        self.active = active
        records, value = self._record(inputs, targets, first=False)
        if value.requires_grad:  # to each hooked layer's output, no weight gradients
            torch.autograd.grad(value, self._stops(records), allow_unused=True)
        self._accumulate(None, records, batch_size_of(inputs))

    def _record(self, inputs, targets, *, first: bool):
        """The engine's hook-pass forward, keeping the records of the owned layers."""
        records, value = super()._record(inputs, targets, first=first)
        return [r for r in records if r.module in self.owned], value

    def _accumulate(self, acc, records, rows: int, *, sums=None, kinds=None) -> None:
        """Each layer group's squares added into its rows, in rank order (``acc`` unused)."""
        for names, group in _groups(records, self.owned, list(self.params)):
            owners = {m: self.owned[m] for m in dict.fromkeys(r.module for r in group)}

            def add(full, group=group, owners=owners):
                if self.active:
                    add_hooked(full, group, owners, self.objective, rows)

            self.chain.run({n: self.shards[n] for n in names},
                           {n: self.shapes[n] for n in names}, add)  # fmt: skip


def _groups(records, owned: dict, order: list) -> list[tuple[list, list]]:
    """Records joined where they touch a common parameter: ``(names, records)`` pairs,
    in the parameters' order (the same on every rank)."""
    parent: dict[str, str] = {}

    def root(name):
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    touched = []
    for record in records:
        names = [n for k, n in owned[record.module] if record.touches(k)]
        touched.append(names)
        for name in names:  # a name alone is its own group
            parent[root(name)] = root(names[0])
    members: dict[str, list] = {}
    for name in parent:
        members.setdefault(root(name), []).append(name)
    position = {n: i for i, n in enumerate(order)}
    out = []
    for head, names in members.items():
        group = [r for r, t in zip(records, touched, strict=True) if t and root(t[0]) == head]
        out.append((sorted(names, key=position.__getitem__), group))
    return sorted(out, key=lambda pair: position[pair[0][0]])


def _is_dtensor(p) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(p, DTensor)
