"""What the per-sample hooks record, and the checks that decide whether they apply.

A forward hook on each hooked layer keeps a :class:`Record` of the call: the
layer's input, and (through a tensor hook on the output, registered before any
in-place change to it) the gradient of the summed objective with respect to
its output. :func:`loss_reduction` and :func:`same_total` are the two checks
of the first chunk (see :mod:`assd.persample`).

Example:
    >>> import torch
    >>> same_total(torch.ones(3), torch.ones(3) + 1e-7), same_total(torch.ones(3), None)
    (True, False)
"""

from __future__ import annotations

import torch

__all__ = ["Record", "loss_reduction", "recorder", "same_total"]


class Record:
    """One call of a hooked layer: its input, and the gradient of its output once known."""

    __slots__ = ("a", "delta", "module", "rows", "source", "version")

    def __init__(self, module, a, rows):
        self.module, self.rows, self.delta = module, rows, None
        self.source = a if a is not None and a.requires_grad else None  # to differentiate
        self.a = None if a is None else a.detach()
        self.version = None if a is None else a._version

    def valid(self, rows: int) -> bool:
        return self.a is not None and self.rows == rows and self.a._version == self.version


def recorder(records: list):
    def hook(module, args, output):
        a = args[0] if args and isinstance(args[0], torch.Tensor) else None
        ok = a is not None and isinstance(output, torch.Tensor) and output.dim() >= 1
        ok = ok and a.dim() >= 1 and output.shape[0] == a.shape[0]
        record = Record(module, a if ok else None, a.shape[0] if ok else -1)
        records.append(record)
        if ok and output.requires_grad:
            output.register_hook(lambda g: setattr(record, "delta", g))

    return hook


def loss_reduction(loss_fn, logits: torch.Tensor, targets) -> str:
    """Whether ``loss_fn`` is the mean or the sum of its per-row values (cheap check)."""
    rows = min(len(logits), 8)
    if rows < 2:
        return "undecided"
    with torch.no_grad():
        logits, targets = logits[:rows].detach(), targets[:rows]
        whole = loss_fn(logits, targets)
        if whole.dim() != 0:
            return "neither"
        parts = torch.stack([loss_fn(logits[i : i + 1], targets[i : i + 1]) for i in range(rows)])
    for name, value in (("mean", parts.mean()), ("sum", parts.sum())):
        if torch.isclose(whole, value, rtol=1e-4, atol=1e-6):
            return name
    return "neither"


def same_total(mine, total) -> bool:
    """Equal within float32 summation-order rounding (relative L2 error below 1e-4)."""
    if total is None or mine is None:
        return (mine is None or not mine.any()) and (total is None or not total.any())
    error = torch.linalg.vector_norm(mine.float() - total.float())
    return bool(error <= 1e-4 * torch.linalg.vector_norm(total.float()) + 1e-30)
