"""Per-sample gradients of common layers, from a layer's input and its output gradient.

For a batch run through a layer, the gradient of a *summed* loss with respect
to the layer's output, ``delta`` (one slice per sample), and the layer's input
``a`` are all it takes to get every sample's own weight gradient:

- ``Linear`` on ``(B, in)`` inputs uses its weight once per sample, so the
  sum over samples of the squared gradients factorises,
  ``sum_i (delta_i a_i^T)**2 = (delta**2)^T (a**2)``: one extra matrix product,
  no per-sample gradient is ever formed (:func:`linear_squares`).
- Everything else here (``Linear`` on sequences, ``Conv1d``/``Conv2d`` with any
  stride, dilation, padding and groups, eval-mode ``BatchNorm``, ``LayerNorm``)
  shares its weight across positions: the per-sample gradient is a sum over
  positions, formed with one batched product per layer (:func:`per_sample`;
  for convolutions :mod:`assd.importance.persample.conv`, which also sums their squares
  without holding every sample's gradient).
- ``Embedding`` gradients are sparse: per sample, the rows it looked up
  (padding rows excluded) with the summed output gradients of their
  positions (:func:`embedding_rows`).

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(3, 2)
    >>> a, delta = torch.randn(4, 3), torch.randn(4, 2)
    >>> grads = per_sample(layer, a, delta)
    >>> torch.allclose(linear_squares(a, delta), grads["weight"].square().sum(0), atol=1e-6)
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import per_sample_conv
from .disguised import disguised_per_sample, layout

__all__ = ["embedding_rows", "linear_squares", "per_sample", "unsupported_reason"]

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_INPUT_DIMS = {nn.Conv1d: 3, nn.Conv2d: 4}


def unsupported_reason(module: nn.Module) -> str | None:
    """Why the hooks cannot take ``module``'s per-sample gradients (None: they can)."""
    if type(module) in (nn.Linear, nn.Embedding, nn.LayerNorm) or isinstance(
        module, nn.modules.linear.NonDynamicallyQuantizableLinear
    ):
        if isinstance(module, nn.Embedding) and (module.max_norm or module.scale_grad_by_freq):
            return "Embedding with max_norm or scale_grad_by_freq (depends on the whole batch)"
        return None
    if type(module) in _INPUT_DIMS:
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            return "convolution with non-zero or 'same'/'valid' string padding"
        return None
    if type(module) in _BATCH_NORMS:
        if module.training or module.running_mean is None:
            return "BatchNorm using batch statistics (mixes samples)"
        return None
    if layout(module) is not None:  # a Linear in disguise (Hugging Face's Conv1D)
        return None
    return f"no per-sample rule for {type(module).__name__}"


def linear_squares(a: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``sum_i (delta_i a_i^T)**2`` for ``(B, in)`` inputs and ``(B, out)`` output gradients."""
    return delta.square().T @ a.square()


def per_sample(module: nn.Module, a: torch.Tensor, delta: torch.Tensor) -> dict:
    """Every sample's gradient of each direct parameter of ``module``: ``{name: (B, *shape)}``.

    Raises:
        ValueError: if the input does not have the layout the rule expects.
    """
    if isinstance(module, nn.Linear):
        return _linear(module, a, delta)
    if layout(module) is not None:
        return disguised_per_sample(module, a, delta)
    if type(module) in _INPUT_DIMS:
        return per_sample_conv(module, a, delta)
    if type(module) in _BATCH_NORMS:
        shape = (1, -1) + (1,) * (a.dim() - 2)
        scale = torch.rsqrt(module.running_var.view(shape) + module.eps)
        normalised = (a - module.running_mean.view(shape)) * scale
        return _affine(module, normalised, delta, keep=1)
    if isinstance(module, nn.LayerNorm):
        normalised = F.layer_norm(a, module.normalized_shape, eps=module.eps)
        return _affine(module, normalised, delta, keep=len(module.normalized_shape))
    if isinstance(module, nn.Embedding):
        rows, sums, batch = embedding_rows(module, a, delta)
        weight = sums.new_zeros(batch * module.num_embeddings, sums.shape[-1])
        weight.index_add_(0, rows, sums)
        return {"weight": weight.view(batch, *module.weight.shape)}
    raise ValueError(f"no per-sample rule for {type(module).__name__}")


def embedding_rows(module: nn.Embedding, index: torch.Tensor, delta: torch.Tensor):
    """Sparse per-sample embedding gradients: ``(keys, sums, B)``.

    ``keys = sample * num_embeddings + row`` for every (sample, row) pair that
    occurs (padding rows excluded), ``sums`` the output gradients of its
    positions added up; the weight row of a key is ``key % num_embeddings``.
    """
    if index.dtype not in (torch.int32, torch.int64) or index.dim() < 1:
        raise ValueError("Embedding input must be integer indices with a batch dimension")
    batch, width = index.shape[0], delta.shape[-1]
    flat = index.reshape(batch, -1).long()
    keys = torch.arange(batch, device=flat.device).unsqueeze(1) * module.num_embeddings + flat
    values = delta.reshape(batch, -1, width)
    if module.padding_idx is not None:
        keep = flat != module.padding_idx
        keys, values = keys[keep], values[keep]
    else:
        keys, values = keys.reshape(-1), values.reshape(-1, width)
    unique, inverse = torch.unique(keys, return_inverse=True)
    sums = values.new_zeros(len(unique), width).index_add_(0, inverse, values)
    return unique, sums, batch


def _linear(module: nn.Linear, a: torch.Tensor, delta: torch.Tensor) -> dict:
    batch = a.shape[0]
    a3 = a.reshape(batch, -1, a.shape[-1])
    d3 = delta.reshape(batch, -1, delta.shape[-1])
    grads = {"weight": torch.bmm(d3.transpose(1, 2), a3)}
    if module.bias is not None:
        grads["bias"] = d3.sum(1)
    return grads


def _affine(module: nn.Module, normalised: torch.Tensor, delta: torch.Tensor, *, keep: int):
    """Per-sample gradients of an elementwise affine ``y = x * weight + bias``.

    ``keep`` is how many dimensions the parameters span: the trailing ones
    (LayerNorm, ``keep`` = len(normalized_shape)) or dimension 1 (BatchNorm).
    """
    if isinstance(module, nn.LayerNorm):
        dims = tuple(range(1, normalised.dim() - keep))
    else:
        dims = tuple(range(2, normalised.dim()))
    grads = {}
    if module.weight is not None:
        grads["weight"] = (delta * normalised).sum(dims) if dims else delta * normalised
    if module.bias is not None:
        grads["bias"] = delta.sum(dims) if dims else delta
    return grads
