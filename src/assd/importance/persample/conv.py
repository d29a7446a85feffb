"""Per-sample gradients of convolutions, and their squares summed over samples.

A convolution shares its weight across output positions, so a sample's
weight gradient is a sum over positions, ``g_i = delta_i @ columns_i^T`` (the
output gradient against the unfolded input). The sample estimator needs only
``sum_i g_i**2``, and how best to get it depends on the layer's shape
(measured by ``benchmarks/persample_conv.py`` on ResNet18 and the digits CNN):

``grouped``  many output positions (ResNet18's first stages, 32x32 and 16x16):
             a convolution backward with one group per sample forms the ``g_i``
             of a few samples (4 MiB of them) at a time, without ``unfold``
             (1.8-3x faster there than the batched product).
``loop``     few positions and large weights (the last stages, 8x8 and 4x4): one
             small product per sample, squared into the sum while it is still in
             cache, instead of writing ``B`` copies of the weight to memory and
             reading them back (1.4-3x faster there).
``grouped``  also small weights at any number of positions (the digits CNN's
             8x8 layers: 1.6 and 4.1 ms per batch of 64, against 5.8 and 5.7 for
             ``unfold``, whose ``im2col`` took 60 % of the whole pass).
``unfold``   every ``g_i`` by one batched product over ``unfold``'s columns, then
             squared and summed; no longer chosen automatically (it was for
             small weights), kept as the plainest formulation to check against.

All three are exact (they only order the same sums differently).

Example:
    >>> import torch
    >>> layer = torch.nn.Conv2d(2, 3, 3, padding=1)
    >>> a, delta = torch.randn(4, 2, 5, 5), torch.randn(4, 3, 5, 5)
    >>> want = per_sample_conv(layer, a, delta)["weight"].square().sum(0)
    >>> got = {m: conv_sums(layer, a, delta, method=m)["weight"] for m in METHODS}
    >>> all(torch.allclose(g, want, atol=1e-5) for g in got.values())
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["METHODS", "conv_method", "conv_sums", "per_sample_conv"]

METHODS = ("grouped", "loop", "unfold")
GROUPED_POSITIONS = 256  # output positions from which ``grouped`` is the fastest
CACHED_BYTES = 2**21  # few positions: per-sample gradients of a batch above this: ``loop``
GROUPED_BYTES, GROUPED_ROWS = 2**22, 64  # samples per grouped backward: 4 MiB of gradients
# (64 rows: the digits CNN's small layers took 5.4 ms per batch with 16, 2.6 ms with 64)
_INPUT_DIMS = {nn.Conv1d: 3, nn.Conv2d: 4}


def per_sample_conv(module: nn.Module, a: torch.Tensor, delta: torch.Tensor) -> dict:
    """Every sample's gradient of the layer's parameters: ``{name: (B, *shape)}``."""
    a, delta, geometry = _as_2d(module, a, delta)
    columns, d = _unfolded(module, a, delta, geometry)
    batch = a.shape[0]
    weight = torch.einsum("bgol,bgil->bgoi", d, columns).reshape(batch, *module.weight.shape)
    grads = {"weight": weight}
    if module.bias is not None:
        grads["bias"] = d.sum(-1).reshape(batch, -1)
    return grads


def conv_sums(module: nn.Module, a: torch.Tensor, delta: torch.Tensor, *,
              absolute: bool = False, method: str | None = None,
              totals: dict | None = None) -> dict:  # fmt: skip
    """``sum_i g_i**2`` (``|g_i|`` if ``absolute``) of the layer's per-sample gradients.

    Args:
        module: a ``Conv1d`` or ``Conv2d`` (any stride, dilation, zero padding, groups).
        a: the layer's batched input.
        delta: the gradient of a summed objective with respect to its output.
        absolute: sum absolute values instead of squares.
        method: ``"grouped"``, ``"loop"`` or ``"unfold"``; None: :func:`conv_method`.
        totals: if a dict, it receives ``sum_i g_i`` (the batch gradient) by name.

    Returns:
        ``{name: tensor shaped like the parameter}``.

    Raises:
        ValueError: on an unbatched input or an unknown ``method``.
    """
    a, delta, geometry = _as_2d(module, a, delta)
    method = method or conv_method(module, delta)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    rule = {"grouped": _grouped, "loop": _looped, "unfold": _unfold}[method]
    keep = totals is not None
    weight, total = rule(module, a, delta, geometry, absolute=absolute, keep=keep)
    sums = {"weight": weight.reshape(module.weight.shape)}
    if keep:
        totals["weight"] = total.reshape(module.weight.shape)
    if module.bias is not None:
        bias = delta.sum((2, 3))  # (B, out)
        if keep:
            totals["bias"] = bias.sum(0)
        sums["bias"] = (bias.abs_() if absolute else bias.square_()).sum(0)
    return sums


def conv_method(module: nn.Module, delta: torch.Tensor) -> str:
    """The fastest of :data:`METHODS` for this layer and batch (see the module's docstring)."""
    if delta[0, 0].numel() < GROUPED_POSITIONS and (
        delta.shape[0] * module.weight.numel() * 4 > CACHED_BYTES
    ):
        return "loop"
    return "grouped"


def _as_2d(module: nn.Module, a: torch.Tensor, delta: torch.Tensor):
    """Input and output gradient as 4-D tensors, with the layer's 2-D geometry."""
    if a.dim() != _INPUT_DIMS[type(module)] or delta.shape[0] != a.shape[0]:
        raise ValueError("convolution input and output gradient must be batched alike")
    geometry = (module.kernel_size, module.stride, module.padding, module.dilation)
    if isinstance(module, nn.Conv1d):  # as a 2-D convolution of height 1
        kernel, stride, padding, dilation = geometry
        a, delta = a.unsqueeze(2), delta.unsqueeze(2)
        geometry = ((1, *kernel), (1, *stride), (0, *padding), (1, *dilation))
    return a, delta, geometry


def _unfolded(module: nn.Module, a: torch.Tensor, delta: torch.Tensor, geometry):
    """``(columns, delta)`` as ``(B, G, in/G * k, L)`` and ``(B, G, out/G, L)``."""
    kernel, stride, padding, dilation = geometry
    batch, groups = a.shape[0], module.groups
    columns = F.unfold(a, kernel, dilation=dilation, padding=padding, stride=stride)
    columns = columns.view(batch, groups, -1, columns.shape[-1])
    return columns, delta.reshape(batch, groups, -1, columns.shape[-1])


def _unfold(module, a, delta, geometry, *, absolute: bool, keep: bool):
    """Every sample's gradient at once (one batched product), squared and summed."""
    columns, d = _unfolded(module, a, delta, geometry)
    grads = torch.einsum("bgol,bgil->bgoi", d, columns).flatten(1)
    total = grads.sum(0) if keep else None
    return (grads.abs_() if absolute else grads.square_()).sum(0), total


def _grouped(module, a, delta, geometry, *, absolute: bool, keep: bool):
    """Per-sample gradients by convolution backward with ``rows * groups`` groups (the
    samples laid out as channels, each its own groups), ``rows`` samples at a time so
    that their gradients stay in cache, squared and summed; also the plain sum if ``keep``.
    """
    kernel, stride, padding, dilation = geometry
    out, size = delta.shape[1], module.weight.numel()
    rows = min(GROUPED_ROWS, max(1, GROUPED_BYTES // (4 * size)))
    weight = a.new_zeros(size)
    total = a.new_zeros(size) if keep else None
    for start in range(0, len(a), rows):
        x, d = a[start : start + rows], delta[start : start + rows]
        grads = torch.nn.grad.conv2d_weight(
            x.reshape(1, -1, *x.shape[2:]), (len(x) * out, module.weight.shape[1], *kernel),
            d.reshape(1, -1, *d.shape[2:]), stride=stride, padding=padding,
            dilation=dilation, groups=len(x) * module.groups,
        ).view(len(x), -1)  # fmt: skip
        if keep:
            total.add_(grads.sum(0))
        weight.add_((grads.abs_() if absolute else grads.square_()).sum(0))
    return weight, total


def _looped(module, a, delta, geometry, *, absolute: bool, keep: bool):
    """One sample at a time: its gradient (one product per group) added, squared, to the
    sum while in cache; also the plain sum (one product over all samples) if ``keep``."""
    columns, d = _unfolded(module, a, delta, geometry)
    weight = columns.new_zeros(d.shape[1], d.shape[2], columns.shape[2])
    total = torch.einsum("bgol,bgil->goi", d, columns) if keep else None
    g = torch.empty_like(weight)  # one buffer for all samples: faster than one each
    for i in range(len(d)):
        torch.bmm(d[i], columns[i].transpose(1, 2), out=g)
        if absolute:
            weight.add_(g.abs_())
        else:
            weight.addcmul_(g, g)
    return weight, total
