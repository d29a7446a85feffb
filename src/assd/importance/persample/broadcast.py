"""What the per-sample hooks see beyond layer calls: broadcasts over the batch and attention.

Some trainable tensors reach the batch without a layer call a forward hook
could see:

- a plain parameter broadcast over the batch, e.g. a ViT's class token
  ``cls.expand(B, -1, -1)`` and position embedding ``tokens + pos``. Sample
  ``i``'s gradient of ``p`` is the output gradient of that op at row ``i``,
  summed over the other dimensions ``p`` is broadcast over;
- a layer run once for the whole batch (leading dimension 1) whose output is
  then added to a batched tensor, e.g. BERT's position embedding looked up
  with ids of shape ``(1, T)``. Its hook sees the batch's summed gradient;
  read from the add's output gradient instead, with the layer's input
  repeated per sample, the layer's own rule gives each sample's gradient
  (:meth:`Record.lift <assd.importance.persample.records.Record.lift>`);
- ``nn.MultiheadAttention``'s projections (:mod:`assd.importance.persample.attention`).

:class:`Watch` is a ``TorchFunctionMode`` active around the hook pass's
forward only: it records ``expand``/``expand_as`` of a watched parameter and
``add``/``sub`` with one, or with a lifted layer output, and answers
``F.multi_head_attention_forward`` for the attention layers the engine owns.
Any other use (``x * p``, ``p.repeat(...)``, an in-place add into ``p``) is not
recorded, so the first chunk's check (hook sums against autograd's batch
gradient) moves the parameter to ``torch.func``.

Example:
    >>> import torch
    >>> p = torch.nn.Parameter(torch.randn(1, 3))
    >>> owner, records = Shared(p), []
    >>> x = torch.randn(4, 3)
    >>> with Watch(records, params={id(p): (p, owner)}):
    ...     y = x + p
    >>> y.pow(2).sum().backward()
    >>> grads = records[0].rule(records[0].a, records[0].delta)[KEY]  # (4, 1, 3): one per row
    >>> torch.allclose(grads.sum(0), p.grad)
    True
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .attention import attention_call
from .records import Record

__all__ = ["KEY", "Shared", "Watch", "broadcast_dims"]

KEY = "param"  # the key of a watched parameter under its Shared owner
_ADDS = {torch.add: 1, torch.Tensor.add: 1, torch.sub: -1, torch.Tensor.sub: -1}
_IN_PLACE = {torch.Tensor.add_: 1, torch.Tensor.sub_: -1}
_EXPANDS = (torch.Tensor.expand, torch.Tensor.expand_as)


class Shared:
    """The owner of one parameter outside any layer with a rule (a key for the engine)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self) -> str:
        return f"Shared({self.name!r})"


class Watch(TorchFunctionMode):
    """Records broadcasts over the batch and visible attention calls into ``records``.

    Args:
        records: the hook pass's list of :class:`Record`.
        params: ``id(parameter) -> (parameter, Shared owner)`` of the watched parameters.
        outputs: ``id(output) -> (output, Record)`` of layer outputs with leading dimension 1
            (filled by the layers' forward hooks during the pass).
        attention: ``id(projection weight) -> nn.MultiheadAttention`` of owned attention layers.
    """

    def __init__(self, records: list, *, params=None, outputs=None, attention=None):
        super().__init__()
        self.records, self.params = records, params or {}
        self.outputs, self.attention = outputs if outputs is not None else {}, attention or {}
        self.seen = False  # whether anything was recorded

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.multi_head_attention_forward:
            self.seen = self.seen or bool(self.attention)
            return attention_call(self.attention, self.records, func, args, kwargs)
        out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor) or not out.requires_grad or kwargs:
            return out
        if func in _ADDS and len(args) == 2:
            for i, x in enumerate(args):
                self._broadcast(x, out, -1 if i and _ADDS[func] < 0 else 1)
        elif func in _IN_PLACE and len(args) == 2:
            self._broadcast(args[1], out, _IN_PLACE[func])
        elif func in _EXPANDS:
            self._broadcast(args[0], out, 1)
        return out

    def _broadcast(self, x, out: torch.Tensor, sign: int) -> None:
        if not isinstance(x, torch.Tensor) or x is out:
            return
        entry = self.params.get(id(x))
        if entry is not None and entry[0] is x:
            dims = broadcast_dims(x, out)
            if dims is not None:
                rule = partial(_param_grads, dims, tuple(x.shape), sign)
                self._watch(Record(entry[1], x, out.shape[0], rule=rule), out, None)
            return
        entry = self.outputs.get(id(x))
        if entry is not None and entry[0] is x and x.dim() == out.dim() and out.shape[0] != 1:
            dims, record = broadcast_dims(x, out), entry[1]
            if dims is not None and record.rows in (1, out.shape[0]):
                if record.rows == 1:
                    record.lift(out.shape[0])
                self._watch(record, out, partial(_lifted, dims, sign))

    def _watch(self, record: Record, out: torch.Tensor, reduce) -> None:
        if reduce is None:
            self.records.append(record)
        self.seen = True
        out.register_hook(partial(_add_delta, record, reduce))


def broadcast_dims(x: torch.Tensor, out: torch.Tensor) -> tuple | None:
    """The dimensions of ``out`` (after the first) that ``x`` is broadcast over, or None
    if ``x`` does not broadcast to ``out`` with size 1 in the batch dimension.

    Example:
        >>> broadcast_dims(torch.zeros(1, 1, 4), torch.zeros(8, 5, 4)), broadcast_dims(
        ...     torch.zeros(8, 4), torch.zeros(8, 4))
        ((1,), None)
    """
    if out.dim() == 0 or x.dim() > out.dim():
        return None
    shape = (1,) * (out.dim() - x.dim()) + tuple(x.shape)
    if shape[0] != 1 or any(s not in (1, o) for s, o in zip(shape, out.shape, strict=True)):
        return None
    return tuple(j for j in range(1, out.dim()) if shape[j] == 1 and out.shape[j] != 1)


def _add_delta(record: Record, reduce, g: torch.Tensor) -> None:
    """Tensor hook: the op's output gradient, reduced, added to the record's."""
    if reduce is not None:
        g = reduce(g)
    record.delta = g if record.delta is None else record.delta + g


def _lifted(dims: tuple, sign: int, g: torch.Tensor) -> torch.Tensor:
    g = g.sum(dims, keepdim=True) if dims else g
    return -g if sign < 0 else g


def _param_grads(dims: tuple, shape: tuple, sign: int, a, delta: torch.Tensor) -> dict:
    """Per-sample gradients of a watched parameter from its op's output gradient (fresh)."""
    g = delta.sum(dims, keepdim=True) if dims else delta.clone()
    g = g.reshape(len(g), *shape)
    return {KEY: g.neg_() if sign < 0 else g}
