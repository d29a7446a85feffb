"""Layers that are a ``Linear`` in disguise: the per-sample rules of ``Linear``, re-oriented.

Hugging Face's ``Conv1D`` (GPT, GPT-2: 94 % of GPT-2's weights) computes
``y = x @ W + b`` with ``W`` of shape ``(in, out)``: a ``Linear`` whose weight
is stored transposed. Any module with no children and no buffers whose only
parameters are a 2-D ``weight`` and an optional 1-D ``bias`` is probed once,
on a small random input, against both layouts: ``F.linear(x, W, b)``
("linear") and ``x @ W + b`` ("transposed"). A module that matches one takes the
``Linear`` paths (:mod:`assd.importance.persample.direct`): the factorised
squares on ``(B, in)`` inputs, cache-sized blocks on sequences. For the
transposed layout the sample's gradient is ``a_i^T delta_i`` (``(in, out)``),
the ``Linear`` formulas with the roles of ``a`` and ``delta`` swapped. The
engine's first-chunk check against autograd still guards every result.

Example:
    >>> import torch
    >>> class Transposed(torch.nn.Module):  # a Conv1D look-alike
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.weight = torch.nn.Parameter(torch.randn(3, 5))
    ...         self.bias = torch.nn.Parameter(torch.zeros(5))
    ...     def forward(self, x):
    ...         return x @ self.weight + self.bias
    >>> layout(Transposed()), layout(torch.nn.Linear(3, 5)), layout(torch.nn.LayerNorm(3))
    ('transposed', None, None)
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["disguised_per_sample", "layout", "swapped"]

_SEEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layout(module: nn.Module) -> str | None:
    """``"linear"`` or ``"transposed"`` for a ``Linear`` in disguise (not ``nn.Linear``
    itself, which has its own rule), else None. Probed once per module."""
    if not isinstance(module, nn.Module) or isinstance(module, nn.Linear):
        return None
    if not _looks_linear(module):
        return None
    if module not in _SEEN:
        _SEEN[module] = _probe(module)
    return _SEEN[module]


def _looks_linear(module: nn.Module) -> bool:
    params = dict(module.named_parameters(recurse=False))
    weight, bias = params.get("weight"), params.get("bias")
    if set(params) - {"weight", "bias"} or weight is None or weight.dim() != 2:
        return False
    if bias is not None and bias.dim() != 1:
        return False
    return not any(True for _ in module.children()) and not any(True for _ in module.buffers())


@torch.no_grad()
def _probe(module: nn.Module) -> str | None:
    weight, bias = module.weight, getattr(module, "bias", None)
    generator = torch.Generator().manual_seed(0)
    for name, width, out_width in (("transposed", weight.shape[0], weight.shape[1]),
                                   ("linear", weight.shape[1], weight.shape[0])):  # fmt: skip
        if bias is not None and len(bias) != out_width:
            continue
        x = torch.randn(2, 3, width, generator=generator).to(weight.device, weight.dtype)
        try:
            y = module(x)
        except Exception:  # not this layout
            continue
        want = x @ weight if name == "transposed" else F.linear(x, weight)
        want = want if bias is None else want + bias
        if isinstance(y, torch.Tensor) and y.shape == want.shape and torch.allclose(
            y, want, rtol=1e-4, atol=1e-5
        ):
            return name
    return None


def swapped(module: nn.Module, a: torch.Tensor, delta: torch.Tensor):
    """``(left, right)`` such that a sample's weight gradient is ``left_i^T right_i``
    in the layout the weight is stored: ``(delta, a)`` for "linear", ``(a, delta)``
    for "transposed"."""
    return (a, delta) if layout(module) == "transposed" else (delta, a)


def disguised_per_sample(module: nn.Module, a: torch.Tensor, delta: torch.Tensor) -> dict:
    """Every sample's gradient of the weight (and bias): ``{name: (B, *shape)}``."""
    batch = a.shape[0]
    a3 = a.reshape(batch, -1, a.shape[-1])
    d3 = delta.reshape(batch, -1, delta.shape[-1])
    left, right = swapped(module, a3, d3)
    grads = {"weight": torch.bmm(left.transpose(1, 2), right)}
    if getattr(module, "bias", None) is not None:
        grads["bias"] = d3.sum(1)
    return grads
