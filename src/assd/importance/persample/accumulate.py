"""One chunk's hooked per-sample gradients, squared (or absolute) and added to the sums.

The part of :class:`assd.importance.persample.engine.SampleEngine` that turns the
records of its forward/backward hooks into per-sample squares: layers whose
weight takes the direct (factorised or blocked) route, per-sample gradients
formed by a layer rule, and parameters used by several layers, summed over their
uses before squaring.
"""

from __future__ import annotations

from collections import defaultdict

from torch import nn

from .direct import add_direct, as_float, note
from .disguised import layout
from .fallback import add_squares
from .layers import per_sample

__all__ = ["add_hooked", "add_hooked_fresh", "layer_groups"]

_FRESH = (nn.Linear, nn.Conv1d, nn.Conv2d)
# Layers whose rule adds each parameter's chunk squares with a single ``add_`` of a tensor
# it has just formed (``conv_sums``; several uses are summed first, then added once).
_ONE_ADD = (nn.Conv1d, nn.Conv2d)  # layers whose per-sample weight gradients are new


def add_hooked_fresh(records, owned: dict, objective: str, rows: int, *, order: list,
                     new, add, sums=None, kinds=None, silent: bool = False,
                     acc: dict | None = None) -> None:  # fmt: skip
    """:func:`add_hooked`, one layer group (:func:`layer_groups`) at a time, into fresh
    zero sums (``new(name)``) that are then handed to ``add(name, sums)``.

    The layer rules add into their sums with fused operations (``addmm``, one
    ``addcmul_`` per sample), whose rounding depends on the sums they start from; a chunk
    summed from zero and then added depends only on the chunk. Ranks that each hold a
    chunk can then form their sums at once and add them in one process's order
    (:mod:`assd.importance.sharded_sample`). ``order``: the parameter names in the order
    the groups are visited (the same on every rank); ``silent``: every group's sums stay
    zero (a rank repeating a chunk with weight 0). ``acc``: where a layer group's rule adds
    one freshly formed tensor per parameter anyway (convolutions), add it into ``acc``
    straight away: the same bits, without the zero sums and the extra pass.
    """
    for names, group in layer_groups(records, owned, order):
        owners = {m: owned[m] for m in dict.fromkeys(r.module for r in group)}
        if acc is not None and all(type(r.module) in _ONE_ADD for r in group):
            add_hooked(acc, group, owners, objective, rows, sums=sums, kinds=kinds)
            continue
        fresh = {n: new(n) for n in names}
        if not silent:
            add_hooked(fresh, group, owners, objective, rows, sums=sums, kinds=kinds)
        for name in names:
            add(name, fresh.pop(name))


def layer_groups(records, owned: dict, order: list) -> list[tuple[list, list]]:
    """Records joined where they touch a common parameter: ``(names, records)`` pairs,
    in the order of the parameter names ``order`` (the same on every rank)."""
    parent: dict[str, str] = {}

    def root(name):
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    touched = []
    for record in records:
        if record.module not in owned:
            touched.append([])
            continue
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


def add_hooked(acc: dict, records, owners: dict, objective: str, rows: int, *, sums=None,
               kinds=None) -> None:  # fmt: skip
    """Add every hooked parameter's per-sample squares of this chunk to ``acc``
    (``owners``: module -> its ``(key, parameter name)`` pairs).

    On the first chunk, ``sums`` also collects each parameter's sum over
    samples (its batch gradient) and ``kinds`` the path it took.
    """
    uses = defaultdict(int)
    for record in records:
        for key, name in owners[record.module]:
            uses[name] += record.delta is not None and record.touches(key)
    dense = {}
    for record in records:
        if record.delta is None:
            continue
        if not record.valid(rows):
            if sums is not None:
                continue  # the first chunk's check rejects these parameters
            raise ValueError(
                f"a {type(record.module).__name__} layer was called differently from the "
                "first batch (e.g. without the batch dimension first); the per-sample hooks "
                "cannot read it. Use estimator='batch', or report this model."
            )
        owned = [(k, n) for k, n in owners[record.module] if record.touches(k)]
        single = [(k, n) for k, n in owned if uses[n] == 1]
        done = add_direct(acc, record, single, objective, sums, kinds)
        others = [(k, n) for k, n in owned if n not in done]
        if not others:
            continue
        a, delta = as_float(record.a), record.delta.float()
        if record.rule is not None:  # attention projections, broadcast parameters
            grads, fresh = record.rule(a, delta), {k for k, _ in others}
        else:
            grads = per_sample(record.module, a, delta)
            fresh = {"weight"} if isinstance(record.module, _FRESH) or layout(
                record.module) else set()  # fmt: skip
        for key, name in others:
            g = grads[key]
            if uses[name] > 1:  # summed over uses first, squared below
                dense[name] = g if name not in dense else dense[name] + g
                continue
            note(sums, kinds, name, g.sum(0), "hooks")
            add_squares(acc[name], g, objective, fresh=key in fresh)
    for name, g in dense.items():
        note(sums, kinds, name, g.sum(0), "hooks")
        add_squares(acc[name], g, objective, fresh=True)
