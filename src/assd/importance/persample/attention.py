"""Per-sample gradients of ``nn.MultiheadAttention``'s projections.

``nn.MultiheadAttention`` applies its input projection (``in_proj_weight`` and
``in_proj_bias``, or separate ``q/k/v_proj_weight`` when ``kdim`` or ``vdim``
differ from ``embed_dim``) and its output projection (``out_proj``) with
``F.linear`` inside ``F.multi_head_attention_forward``: there is no layer call
a hook could see. During the engine's hook pass, a ``TorchFunctionMode``
(:mod:`assd.importance.persample.broadcast`) answers that function's calls for the
attention layers the engine owns with :func:`attention_call`: the same
computation, written batch first, whose input projections record their input
and (by a tensor hook) their output gradient, and whose output projection is a
call of the ``out_proj`` layer, recorded by its forward hook like any sequence
``Linear``. Each projection's per-sample gradient is then one batched product,
as for ``Linear`` on sequences. The user's module is never changed.

Calls this rule does not cover (unbatched input, ``static_k``/``static_v``,
masks of other shapes, ``is_causal`` without a mask) run natively and leave
an unreadable record, so the first chunk's check moves the layer's parameters
to ``torch.func``; layers with ``bias_k``/``bias_v``, ``add_zero_attn`` or
attention dropout in train mode are not owned at all (:func:`attention_reason`).

Example:
    >>> import torch
    >>> layer = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    >>> x = torch.randn(3, 5, 8)
    >>> records = []
    >>> with visible_attention({id(layer.in_proj_weight): layer}, records):
    ...     out, _ = layer(x, x, x, need_weights=False)
    >>> torch.allclose(out, layer(x, x, x, need_weights=False)[0], atol=1e-6), len(records)
    (True, 1)
"""

from __future__ import annotations

import inspect
import math
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .records import Record

__all__ = ["attention_call", "attention_reason", "visible_attention"]

_SIGNATURE = inspect.signature(F.multi_head_attention_forward)


def attention_reason(module: nn.MultiheadAttention) -> str | None:
    """Why the attention rule cannot take this layer (None: it can)."""
    if module.bias_k is not None or module.bias_v is not None or module.add_zero_attn:
        return "MultiheadAttention with bias_k/bias_v or add_zero_attn (no per-sample rule)"
    if module.training and module.dropout > 0:
        return "MultiheadAttention with dropout in train mode (random per call)"
    return None


def attention_call(owners: dict, records: list, func, args, kwargs):
    """Answer one ``F.multi_head_attention_forward`` call (``owners``: weight id -> layer)."""
    call = _SIGNATURE.bind(*args, **kwargs)
    call.apply_defaults()
    call = call.arguments
    weight = call["in_proj_weight"] if call["in_proj_weight"] is not None else call["q_proj_weight"]
    module = owners.get(id(weight))
    if module is None or weight is not (module.in_proj_weight if module._qkv_same_embed_dim
                                        else module.q_proj_weight):  # fmt: skip
        return func(*args, **kwargs)
    if not _plain(module, call):  # natively; the first chunk's check rejects the layer
        records.extend([Record(module, None, -1), Record(module.out_proj, None, -1)])
        return func(*args, **kwargs)
    return _visible(module, records, call)


@contextmanager
def visible_attention(owners: dict, records: list):
    """Run attention layers of ``owners`` with visible projections (for tests and doctests)."""

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.multi_head_attention_forward:
                return attention_call(owners, records, func, args, kwargs or {})
            return func(*args, **(kwargs or {}))

    with Mode():
        yield


def _plain(module, call) -> bool:
    """Whether the call is one :func:`_visible` computes exactly as torch does."""
    query, key = call["query"], call["key"]
    if query.dim() != 3 or call["static_k"] is not None or call["static_v"] is not None:
        return False
    if call["bias_k"] is not None or call["bias_v"] is not None or call["add_zero_attn"]:
        return False
    if call["out_proj_weight"] is not module.out_proj.weight:
        return False
    if call["out_proj_bias"] is not module.out_proj.bias:
        return False
    if call["training"] and call["dropout_p"] > 0:
        return False
    (length, batch, _), source = query.shape, key.shape[0]
    mask, padding = call["attn_mask"], call["key_padding_mask"]
    shapes = {2: (length, source), 3: (batch * call["num_heads"], length, source)}
    if mask is None and call["is_causal"]:
        return False
    if mask is not None and (shapes.get(mask.dim()) != tuple(mask.shape) or not _maskable(mask)):
        return False
    return padding is None or (tuple(padding.shape) == (batch, source) and _maskable(padding))


def _maskable(mask: torch.Tensor) -> bool:
    return mask.dtype == torch.bool or mask.is_floating_point()


def _additive(mask, dtype):
    if mask is None or mask.is_floating_point():
        return mask
    return torch.zeros_like(mask, dtype=dtype).masked_fill_(mask, float("-inf"))


def _visible(module, records: list, call):
    """``F.multi_head_attention_forward``, batch first, projections recorded."""
    query, key, heads = call["query"], call["key"], call["num_heads"]
    (length, batch, dim), source = query.shape, key.shape[0]
    q, k, v = _in_projections(module, records, call)
    q, k, v = (t.view(batch, -1, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
    mask, causal = _mask(call, query.dtype, batch, heads, length, source)
    weights = None
    if call["need_weights"]:
        scores = (q * math.sqrt(1.0 / float(dim // heads))) @ k.transpose(-2, -1)
        weights = torch.softmax(scores if mask is None else scores + mask, dim=-1)
        out = weights @ v
        weights = weights.mean(1) if call["average_attn_weights"] else weights
    else:
        out = F.scaled_dot_product_attention(q, k, v, mask, 0.0, causal)
    out = module.out_proj(out.transpose(1, 2).reshape(batch, length, dim))  # hooked layer
    # torch returns (L, B, E) contiguous; batch first, the layer transposes it back
    return out.transpose(0, 1) if module.batch_first else out.transpose(0, 1).contiguous(), weights


def _mask(call, dtype, batch: int, heads: int, length: int, source: int):
    """The additive mask as ``(B or 1, H or 1, L, S)``, and whether SDPA should be causal."""
    padding = _additive(call["key_padding_mask"], dtype)
    causal = call["is_causal"]
    if causal and padding is None and not call["need_weights"]:
        return None, True  # torch passes the causal hint on instead of the mask
    mask = _additive(call["attn_mask"], dtype)
    if mask is not None:
        mask = mask.view(1, 1, length, source) if mask.dim() == 2 else mask.view(
            batch, heads, length, source)  # fmt: skip
    if padding is not None:
        padding = padding.view(batch, 1, 1, source)
        mask = padding if mask is None else mask + padding
    return mask, False  # with a mask, torch does not pass the causal hint on to SDPA


def _in_projections(module, records: list, call):
    """The query, key and value projections, batch first, each recorded."""
    query, key, value = call["query"], call["key"], call["value"]
    bias, dim = call["in_proj_bias"], query.shape[-1]
    project = partial(_project, module, records)
    if call["use_separate_proj_weight"]:
        biases = bias.chunk(3) if bias is not None else (None,) * 3
        names = ("q_proj_weight", "k_proj_weight", "v_proj_weight")
        triples = zip((query, key, value), names, biases, strict=True)
        return tuple(project(x, call[n], n, b, i * dim) for i, (x, n, b) in enumerate(triples))
    weight, name = call["in_proj_weight"], "in_proj_weight"
    part = lambda lo, hi: (weight[lo:hi], name, None if bias is None else bias[lo:hi], lo)  # noqa: E731
    if query is key and key is value:
        return project(query, *part(0, 3 * dim)).chunk(3, dim=-1)
    if key is value:
        return (project(query, *part(0, dim)), *project(key, *part(dim, 3 * dim)).chunk(2, dim=-1))
    inputs = (query, key, value)
    return tuple(project(x, *part(i * dim, (i + 1) * dim)) for i, x in enumerate(inputs))


def _project(module, records: list, x, weight, name: str, bias, start: int):
    """``F.linear`` on the batch-first input, recorded with the rows of the weight it used."""
    a = x.transpose(0, 1)  # (B, L, in)
    out = F.linear(a, weight, bias)
    keys = frozenset([name] + (["in_proj_bias"] if bias is not None else []))
    offset = start if name == "in_proj_weight" else 0
    rule = partial(_projection_grads, module, name, offset, start if bias is not None else None)
    record = Record(module, a, a.shape[0], rule=rule, keys=keys)
    records.append(record)
    if out.requires_grad:
        out.register_hook(lambda g: setattr(record, "delta", g))
    return out


def _projection_grads(module, name: str, offset: int, bias_start, a, delta) -> dict:
    """Per-sample gradients of one projection, placed at its rows of the full parameters."""
    grads = {name: _place(torch.bmm(delta.transpose(1, 2), a), getattr(module, name), offset)}
    if bias_start is not None:
        grads["in_proj_bias"] = _place(delta.sum(1), module.in_proj_bias, bias_start)
    return grads


def _place(g: torch.Tensor, param: torch.Tensor, start: int) -> torch.Tensor:
    if g.shape[1:] == param.shape:
        return g
    full = g.new_zeros(len(g), *param.shape)
    full[:, start : start + g.shape[1]] = g
    return full
