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

__all__ = ["add_hooked"]

_FRESH = (nn.Linear, nn.Conv1d, nn.Conv2d)  # layers whose per-sample weight gradients are new


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
