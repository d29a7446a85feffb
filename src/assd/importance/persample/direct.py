"""Per-sample squares that need no array of every sample's whole gradient.

The engine (:mod:`assd.importance.persample.engine`) sends a hooked parameter used once in the
batch here first:

- a ``Linear`` weight on ``(B, in)`` inputs under a squared objective:
  ``sum_i (delta_i a_i^T)**2 = (delta**2)^T (a**2)``, one matrix product;
- a ``Linear`` weight on sequences, or an attention projection
  (:mod:`assd.importance.persample.attention`): sample ``i``'s gradient
  ``g_i = sum_t delta_it a_it^T`` does not factorise, so each ``g_i`` is
  formed, but a block of output rows at a time, small enough to stay in cache
  while it is squared and summed (:func:`shared_linear_squares`; for up to 16
  samples, one fused multiply-add per sample). Formed for the whole weight at
  once (``B x out x in`` floats, 2.7 GB per batch of 8 on
  ViT-B), the product, the squares and the sum each stream that array through
  memory, and memory bandwidth sets the time;
- a convolution: :func:`assd.importance.persample.conv.conv_sums`;
- an ``Embedding``: the rows each sample looked up, summed per sample.

On the first chunk each also notes the parameter's sum over samples for the
engine's check against autograd; a sequence weight's as random projections
(:class:`~assd.importance.persample.records.Projected`), which cost two thin products
instead of one as large as the weight gradient.

Example:
    >>> import torch
    >>> a, delta = torch.randn(4, 6, 3), torch.randn(4, 6, 5)
    >>> out = torch.zeros(5, 3)
    >>> shared_linear_squares(a, delta, out, objective="loss", block=100)  # blocks of 2, 2, 1 rows
    >>> torch.allclose(out, torch.bmm(delta.transpose(1, 2), a).square().sum(0), atol=1e-5)
    True
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import conv_sums
from .disguised import layout, swapped
from .fallback import add_squares
from .layers import embedding_rows
from .products import add_row_product_
from .records import Projected, Summed

__all__ = ["BLOCK", "add_direct", "as_float", "note", "shared_linear_squares"]

BLOCK = 4 * 2**20  # bytes of per-sample gradients formed at once
_SEQUENCE = (nn.Linear, nn.MultiheadAttention)


def add_direct(acc, record, single, objective: str, sums=None, kinds=None) -> set[str]:
    """Add the squares of the parameters in ``single`` (used once) that need no dense
    per-sample gradients to ``acc``; returns the names done."""
    module, done = record.module, set()
    linear = isinstance(module, nn.Linear) or layout(module) is not None  # Conv1D too
    if linear and record.a.dim() == 2 and objective == "loss":
        a, delta = as_float(record.a), record.delta.float()
        squares = delta.square() if single else None
        left, right = swapped(module, a, delta)  # the weight's gradient is left^T right
        for key, name in single:
            if key == "weight":
                add_row_product_(acc[name], left.square(), right.square())  # linear_squares
                total = lambda w=acc[name]: add_row_product_(torch.zeros_like(w), left, right)  # noqa: E731
                note(sums, kinds, name, total, "factorised")
            else:
                acc[name].add_(squares.sum(0))
                note(sums, kinds, name, lambda: delta.sum(0), "hooks")
            done.add(name)
    elif type(module) in (nn.Conv1d, nn.Conv2d) and single:
        a, delta = as_float(record.a), record.delta.float()
        totals = {} if sums is not None else None  # first chunk: the batch gradient
        squares = conv_sums(module, a, delta, absolute=objective != "loss", totals=totals)
        for key, name in single:
            acc[name].add_(squares[key])
            note(sums, kinds, name, lambda key=key: totals[key], "hooks")
            done.add(name)
    elif single and record.a.dim() >= 3 and (isinstance(module, _SEQUENCE) or linear):
        done = _add_sequence(acc, record, single, objective, sums, kinds)
    elif isinstance(module, nn.Embedding) and single:
        name = single[0][1]
        keys, rows, _ = embedding_rows(module, record.a, record.delta.float())
        keys = keys % module.num_embeddings
        note(sums, kinds, name, lambda: torch.zeros_like(acc[name]).index_add_(0, keys, rows),
             "hooks")  # fmt: skip
        values = rows.square_() if objective == "loss" else rows.abs_()
        acc[name].index_add_(0, keys, values)
        done.add(name)
    return done


def _add_sequence(acc, record, single, objective: str, sums, kinds) -> set[str]:
    """A weight on sequences, block by block; its bias directly."""
    a, delta = as_float(record.a), record.delta.float()
    a = a.reshape(len(a), -1, a.shape[-1])
    delta = delta.reshape(len(delta), -1, delta.shape[-1])
    done = set()
    left, right = swapped(record.module, a, delta)  # weight gradient: left_i^T right_i
    for _, name in single:
        if acc[name].dim() == 2 and acc[name].shape[0] != left.shape[-1]:
            continue  # part of a projection packed with others: the record's rule places it
        if acc[name].dim() == 1 and acc[name].shape[0] != delta.shape[-1]:
            continue
        if acc[name].dim() == 2:
            shared_linear_squares(right, left, acc[name], objective=objective)
            note(sums, kinds, name, lambda: Projected(right.reshape(-1, right.shape[-1]),
                 left.reshape(-1, left.shape[-1])), "hooks")  # fmt: skip
        else:
            g = delta.sum(1)
            note(sums, kinds, name, lambda: Summed(g.sum(0), delta.abs().sum((0, 1))),  # noqa: B023
                 "hooks")  # fmt: skip
            add_squares(acc[name], g, objective, fresh=True)
        done.add(name)
    return done


def shared_linear_squares(a: torch.Tensor, delta: torch.Tensor, out: torch.Tensor, *,
                          objective: str, block: int = BLOCK) -> None:  # fmt: skip
    """``out += sum_i g_i**2`` (``|g_i|`` loss-free), ``g_i = delta_i^T a_i``.

    Args:
        a: the layer inputs, ``(B, T, in)``.
        delta: the output gradients, ``(B, T, out)``.
        out: the ``(out, in)`` accumulator.
        objective: ``"loss"`` (squares) or ``"output_norm"`` (absolute values).
        block: bytes of per-sample gradients formed at once.
    """
    batch, width = a.shape[0], a.shape[-1]
    rows = max(1, block // (4 * batch * width))
    columns = delta.transpose(1, 2).contiguous()  # (B, out, T): row blocks are contiguous
    total = columns.shape[1]
    g, summed = a.new_empty(batch, rows, width), a.new_empty(rows, width)  # reused, in cache
    fused = objective == "loss" and batch <= 16  # one multiply-add pass per sample
    for lo in range(0, total, rows):
        if lo + rows > total:  # the last, shorter block
            g, summed = g[:, : total - lo].contiguous(), summed[: total - lo]
        torch.bmm(columns[:, lo : lo + rows], a, out=g)
        target = out[lo : lo + rows]
        if fused:
            for sample in g:
                target.addcmul_(sample, sample)
        else:
            g = g.square_() if objective == "loss" else g.abs_()
            target += torch.sum(g, 0, out=summed)


def note(sums, kinds, name: str, total, kind: str) -> None:
    """First chunk only: add to a parameter's batch gradient (``total`` may be a thunk)."""
    if sums is None:
        return
    total = total() if callable(total) else total
    sums[name] = total if name not in sums else sums[name] + total
    kinds[name] = kind if name not in kinds else "hooks"  # several uses: summed per sample


def as_float(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.is_floating_point() and t.dtype != torch.float32 else t
