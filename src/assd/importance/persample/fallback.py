"""The two fallbacks of the per-sample engine: ``torch.func`` and a loop over samples.

Both compute the definition directly (each sample's own objective on a batch
of one) for the parameters the layer hooks of :mod:`assd.importance.persample.engine` cannot
take. ``vmap(grad(...))`` runs chunks of samples at once; the loop, one
backward per sample, is for models ``vmap`` cannot trace.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(3, 2)
    >>> params = dict(model.named_parameters())
    >>> acc = {n: torch.zeros_like(p) for n, p in params.items()}
    >>> x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    >>> vmap_sums(model, params, list(params), acc, x, y, objective="loss", budget=2**20)
    >>> looped = {n: torch.zeros_like(p) for n, p in params.items()}
    >>> loop_sums(model, params, list(params), looped, x, y, objective="loss")
    >>> torch.allclose(acc["weight"], looped["weight"], atol=1e-6)
    True
"""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_map

from ...batches import batch_size_of, forward
from ..objectives import add_, objective_value

__all__ = ["add_squares", "loop_sums", "rows_per_chunk", "slice_batch", "vmap_sums"]


def rows_per_chunk(bytes_per_sample: int, budget: int) -> int:
    """How many samples' gradients fit in ``budget`` bytes (at least one).

    Example:
        >>> rows_per_chunk(4000, 40_000), rows_per_chunk(4000, 1)
        (10, 1)
    """
    return max(1, int(budget // max(bytes_per_sample, 1)))


def vmap_sums(model, params, names, acc, inputs, targets, *, objective, loss_fn=None, budget):
    """Add the per-sample squared (or absolute) gradients of ``names`` to ``acc``, by ``vmap``."""
    chosen = {n: params[n].detach() for n in names}
    fixed = {n: p.detach() for n, p in params.items() if n not in chosen}

    def one(p, x, y):
        x1 = tree_map(lambda t: t.unsqueeze(0), x)
        y1 = None if y is None else y.unsqueeze(0)
        call = lambda *a, **k: functional_call(model, {**fixed, **p}, a, k)  # noqa: E731
        return objective_value(objective, forward(call, x1), y1, loss_fn)

    per_sample = vmap(grad(one), in_dims=(None, 0, None if targets is None else 0))
    itemsize = max(p.element_size() for p in chosen.values())
    numel = sum(p.numel() for p in chosen.values())
    rows = rows_per_chunk(numel * (itemsize + (4 if itemsize != 4 else 0)), budget)
    for start in range(0, batch_size_of(inputs), rows):
        grads = per_sample(chosen, *slice_batch(inputs, targets, start, rows))
        for name, g in grads.items():
            add_squares(acc[name], g if g.dtype == torch.float32 else g.float(), objective)


def loop_sums(model, params, names, acc, inputs, targets, *, objective, loss_fn=None):
    """The same as :func:`vmap_sums`, one sample (one backward) at a time."""
    for i in range(batch_size_of(inputs)):
        x, y = slice_batch(inputs, targets, i, 1)
        value = objective_value(objective, forward(model, x), y, loss_fn)
        grads = torch.autograd.grad(value, [params[n] for n in names], allow_unused=True)
        pairs = [(acc[n], g) for n, g in zip(names, grads, strict=True) if g is not None]
        if pairs:
            add_([a for a, _ in pairs], [g for _, g in pairs], objective)


def add_squares(total: torch.Tensor, g: torch.Tensor, objective: str, *, fresh=False) -> None:
    """``total += sum_i g_i**2`` (``|g_i|`` loss-free) over dimension 0.

    Squares ``g`` in place only if ``fresh`` (nothing else can see it): autograd
    may return one tensor, or views of one, for several inputs (ViT's class
    token and position embedding), and squaring one in place corrupts the other.
    """
    if objective == "loss":
        g = g.square_() if fresh else g.square()
    else:
        g = g.abs_() if fresh else g.abs()
    total.add_(g.sum(0))


def slice_batch(inputs, targets, start: int, rows: int):
    """Rows ``start:start + rows`` of every tensor of a batch."""
    part = slice(start, start + rows)
    x = tree_map(lambda t: t[part] if isinstance(t, torch.Tensor) else t, inputs)
    return x, None if targets is None else targets[part]
