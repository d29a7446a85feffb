"""What the per-sample hooks record, and the checks that decide whether they apply.

A forward hook on each hooked layer keeps a :class:`Record` of the call: the
layer's input, and (through a tensor hook on the output, registered before any
in-place change to it) the gradient of the summed objective with respect to
its output. :func:`loss_reduction` and :func:`same_total` are the two checks
of the first chunk (see :mod:`assd.importance.persample.engine`).

Example:
    >>> import torch
    >>> same_total(torch.ones(3), torch.ones(3) + 1e-7), same_total(torch.ones(3), None)
    (True, False)
"""

from __future__ import annotations

import torch

__all__ = ["Projected", "Record", "Summed", "loss_reduction", "recorder", "same_total"]


class Record:
    """One call of a hooked layer: its input, and the gradient of its output once known.

    ``rule`` (optional) turns ``(a, delta)`` into per-sample gradients by parameter key
    where the layer's own rule does not apply (an attention projection, a broadcast
    parameter), and ``keys`` names the keys that call touches (None: all of the layer's).
    """

    __slots__ = ("a", "delta", "keys", "module", "rows", "rule", "source", "version")

    def __init__(self, module, a, rows, *, rule=None, keys=None):
        self.module, self.rows, self.delta = module, rows, None
        self.rule, self.keys = rule, keys
        self.source = a if a is not None and a.requires_grad else None  # to differentiate
        self.a = None if a is None else a.detach()
        self.version = None if a is None else a._version

    def valid(self, rows: int) -> bool:
        return self.a is not None and self.rows == rows and self.a._version == self.version

    def touches(self, key: str) -> bool:
        return self.keys is None or key in self.keys

    def lift(self, rows: int) -> None:
        """The layer ran once for the whole batch (leading dimension 1) and its output was
        then broadcast over ``rows`` samples: read its input as repeated per sample; the
        per-sample output gradients come from the broadcast (see ``persample_broadcast``)."""
        self.a = self.a.expand(rows, *self.a.shape[1:])
        self.rows, self.delta = rows, None


def recorder(records: list, shared: dict | None = None):
    """A forward hook that appends a :class:`Record` of each call to ``records``.

    Outputs with a leading dimension of 1 (a layer run once for the whole batch) are
    also kept in ``shared`` by id, in case a broadcast over the batch follows.
    """

    def hook(module, args, output):
        a = args[0] if args and isinstance(args[0], torch.Tensor) else None
        ok = a is not None and isinstance(output, torch.Tensor) and output.dim() >= 1
        ok = ok and a.dim() >= 1 and output.shape[0] == a.shape[0]
        record = Record(module, a if ok else None, a.shape[0] if ok else -1)
        records.append(record)
        if ok and output.requires_grad:
            output.register_hook(lambda g: _store(record, g))
            if shared is not None and output.shape[0] == 1:
                shared[id(output)] = (output, record)

    return hook


def _store(record: Record, g: torch.Tensor) -> None:
    if record.rows == g.shape[0]:  # a lifted record gets its gradients from the broadcast
        record.delta = g


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


class Projected:
    """A batch weight gradient ``G = delta^T a`` known through ``k`` random projections.

    The first chunk's check compares the hooks' sum over samples with autograd's
    batch gradient. For a weight on sequences, forming ``G`` costs a matrix
    product as large as the weight gradient itself; ``u_j^T G v_j`` for ``k``
    random Gaussian pairs costs two thin products. With ``D`` the difference
    from autograd's gradient, ``E[(u^T D v)^2] = ||D||^2``, so the root mean
    square over the ``k`` pairs estimates ``||D||`` (8 pairs: within a factor 3
    but with probability below 1e-6) and the same relative bound applies.

    Example:
        >>> a, delta = torch.randn(40, 3), torch.randn(40, 5)
        >>> seen = Projected(a, delta)
        >>> seen.matches(delta.T @ a), seen.matches(delta.T @ a * 1.01)
        (True, False)
    """

    __slots__ = ("u", "v", "values")

    def __init__(self, a: torch.Tensor, delta: torch.Tensor, *, pairs: int = 8):
        generator = torch.Generator(device=a.device).manual_seed(0)
        options = {"generator": generator, "device": a.device}
        self.u = torch.randn(delta.shape[1], pairs, **options)
        self.v = torch.randn(a.shape[1], pairs, **options)
        self.values = ((delta.float() @ self.u) * (a.float() @ self.v)).sum(0)

    def matches(self, total: torch.Tensor | None) -> bool:
        if total is None:
            return not self.values.any()
        seen = ((total.float() @ self.v) * self.u).sum(0)
        error = torch.linalg.vector_norm(self.values - seen) / len(seen) ** 0.5
        return bool(error <= 1e-4 * torch.linalg.vector_norm(total.float()) + 1e-30)


class Summed:
    """A bias gradient summed over samples and positions, with the sum of the absolute
    values of its terms: the scale of its rounding error where the terms cancel (an
    attention key's bias has an exactly zero gradient, and both sums are rounding noise).

    Example:
        >>> delta = torch.tensor([[[1e3, 1.0], [-1e3, 2.0]]])  # (B, T, out)
        >>> Summed(delta.sum((0, 1)), delta.abs().sum((0, 1))).matches(torch.tensor([1e-5, 3.0]))
        True
    """

    __slots__ = ("scale", "value")

    def __init__(self, value: torch.Tensor, scale: torch.Tensor):
        self.value, self.scale = value, scale

    def matches(self, total: torch.Tensor | None) -> bool:
        if same_total(self.value, total):
            return True
        total = torch.zeros_like(self.value) if total is None else total
        error = torch.linalg.vector_norm(self.value.float() - total.float())
        return bool(error <= 1e-4 * torch.linalg.vector_norm(self.scale.float()))


def same_total(mine, total) -> bool:
    """Equal within float32 summation-order rounding (relative L2 error below 1e-4)."""
    if isinstance(mine, (Projected, Summed)):
        return mine.matches(total)
    if total is None or mine is None:
        return (mine is None or not mine.any()) and (total is None or not total.any())
    error = torch.linalg.vector_norm(mine.float() - total.float())
    return bool(error <= 1e-4 * torch.linalg.vector_norm(total.float()) + 1e-30)
