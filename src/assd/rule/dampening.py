"""The SSD selection and dampening rules, and ASSD's adaptive alpha.

All functions work on whole tensors (no loop over elements). With forget
importance ``f``, reference importance ``d``, threshold ``alpha`` and
dampening constant ``lam``, an element is *selected* when ``f > alpha * d``
and a selected weight is multiplied by ``min(lam * d / f, 1)``. Weights are
never increased; elements that are not selected keep their exact bits.

Example:
    >>> import torch
    >>> f, d = torch.tensor([4.0, 1.0, 3.0]), torch.tensor([1.0, 1.0, 0.0])
    >>> select(f, d, alpha=2.0).tolist()
    [True, False, True]
    >>> dampening_factor(f, d, dampening=1.0).tolist()
    [0.25, 1.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from .blocks import Scratch, gather_block, gather_numpy, numpy_flat, plan_blocks
from .percentile import forget_percentile, ratio_percentile
from .sharded_dampening import any_sharded, dampen_shards_, sharded_alpha

__all__ = [
    "adaptive_alpha",
    "dampen_",
    "dampen_parameters_",
    "dampening_factor",
    "relative_importance",
    "select",
]


def relative_importance(forget: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """``forget / data`` elementwise: NaN where both are 0, +inf where only ``data`` is."""
    return forget / data


def select(forget: torch.Tensor, data: torch.Tensor, alpha: float) -> torch.Tensor:
    """Boolean mask of the elements SSD dampens: ``forget > alpha * data``."""
    return forget > alpha * data


def dampening_factor(
    forget: torch.Tensor, data: torch.Tensor, dampening: float = 1.0
) -> torch.Tensor:
    """The multiplier ``min(dampening * data / forget, 1)`` (1 where ``forget`` is 0)."""
    return (dampening * data / forget).nan_to_num_(nan=1.0).clamp_(max=1.0)


def dampen_(
    param: torch.Tensor,
    forget: torch.Tensor,
    data: torch.Tensor,
    *,
    alpha: float,
    dampening: float = 1.0,
) -> int:
    """Dampen one parameter tensor in place; returns how many elements were selected."""
    counts = dampen_parameters_(
        {"": param}, {"": forget}, {"": data}, alpha=alpha, dampening=dampening
    )
    return counts[""][0]


def dampen_parameters_(
    params: Mapping[str, torch.Tensor],
    forget: Mapping[str, torch.Tensor],
    data: Mapping[str, torch.Tensor],
    *,
    alpha: float,
    dampening: float = 1.0,
) -> dict[str, tuple[int, int]]:
    """Dampen every named parameter in place.

    Works on blocks of at most ``assd.rule.blocks.BLOCK`` (2**18) elements (small
    parameters pooled, large ones cut) and rewrites only selected elements, so
    its temporaries are a few MiB whatever the model's size. Results are bit-identical to applying
    :func:`select` and :func:`dampening_factor` to each whole tensor.

    Returns:
        ``{name: (selected, elements)}`` for every parameter.
    """
    _check_hyperparameters(alpha, dampening)
    if any_sharded(params, forget, data):  # FSDP2: each rank its own rows (sharded_dampening)
        return dampen_shards_(params, forget, data, alpha=alpha, dampening=dampening,
                              dampen_local=dampen_parameters_)  # fmt: skip
    selected, names = dict.fromkeys(params, 0), []
    with torch.no_grad():
        for name, param in params.items():
            if param.is_contiguous() and forget[name].shape == param.shape == data[name].shape:
                names.append(name)
            else:  # rare: the plain whole-tensor way
                f, d = forget[name].to(param.device), data[name].to(param.device)
                selected[name] = _dampen_whole(param, f.detach(), d.detach(), alpha, dampening)
        flat = _Flat([params[n] for n in names], [forget[n] for n in names],
                     [data[n] for n in names])  # fmt: skip
        for pieces in plan_blocks(flat.params, keys=flat.keys):
            for index, n in _dampen_block(flat, pieces, alpha, dampening):
                selected[names[index]] += n
    return {name: (selected[name], p.numel()) for name, p in params.items()}


class _Flat:
    """The parameters and their two importances, with flat NumPy views where possible."""

    def __init__(self, params: list, forget: list, data: list):
        self.params, self.forget, self.data = params, forget, data
        triples = list(zip(params, forget, data, strict=True))
        self.keys = [(p.dtype, p.device, f.dtype, f.device, d.dtype, d.device)
                     for p, f, d in triples]  # fmt: skip
        self.numpy = [all(map(_numpy_able, t)) for t in triples]
        views = [
            _numpy_views(t) if ok else (None,) * 3
            for t, ok in zip(triples, self.numpy, strict=True)
        ]
        self.params_np = [v[0] for v in views]
        self.forget_np = [v[1] for v in views]
        self.data_np = [v[2] for v in views]
        self.scratch = Scratch()

    def torch_flats(self, pieces) -> tuple[dict, dict, dict]:
        """Flat tensor views of a block's parameters and importances (on the parameter's device)."""
        params = {i: self.params[i].detach().view(-1) for i, _, _ in pieces}
        forget = {i: self.forget[i].detach().reshape(-1).to(params[i].device) for i in params}
        data = {i: self.data[i].detach().reshape(-1).to(params[i].device) for i in params}
        return params, forget, data


def _dampen_block(flat: _Flat, pieces, alpha: float, dampening: float):
    """Select in one block and scale its selected weights; yields ``(index, selected)``."""
    if flat.numpy[pieces[0][0]]:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            yield from _dampen_numpy(flat, pieces, alpha, dampening)
    else:
        yield from _dampen_torch(flat, pieces, alpha, dampening)


def _dampen_numpy(flat: _Flat, pieces, alpha: float, dampening: float):
    """NumPy on CPU memory: its vectorised compare and nonzero are several times faster
    than PyTorch's. The arithmetic is the same float32/float64 arithmetic, bit for bit."""
    f = gather_numpy(flat.forget_np, pieces, flat.scratch, "f")
    d = gather_numpy(flat.data_np, pieces, flat.scratch, "d")
    threshold = np.multiply(d, d.dtype.type(alpha), out=flat.scratch.get("t", d.size, d.dtype))
    rows = np.flatnonzero(np.greater(f, threshold, out=flat.scratch.get("m", f.size, bool)))
    if rows.size == 0:
        return
    ds = d[rows]
    factor = np.fmin(np.multiply(ds, ds.dtype.type(dampening)) / f[rows], 1)  # NaN -> 1
    starts = np.cumsum([0] + [stop - start for _, start, stop in pieces])
    cuts = np.searchsorted(rows, starts)
    for k, (index, start, stop) in enumerate(pieces):
        if cuts[k] == cuts[k + 1]:
            continue
        weights = flat.params_np[index][start:stop]
        local = rows[cuts[k] : cuts[k + 1]] - starts[k]
        weights[local] = weights[local] * factor[cuts[k] : cuts[k + 1]].astype(weights.dtype)
        yield index, int(cuts[k + 1] - cuts[k])


def _dampen_torch(flat: _Flat, pieces, alpha: float, dampening: float):
    """The same with PyTorch, for other devices and dtypes."""
    params, forget, data = flat.torch_flats(pieces)
    f, d = gather_block(forget, pieces), gather_block(data, pieces)
    rows = select(f, d, alpha).nonzero().squeeze(1)
    if rows.numel() == 0:
        return
    factor = dampening_factor(f[rows], d[rows], dampening)
    sizes = [stop - start for _, start, stop in pieces]
    starts = torch.tensor([0, *sizes], device=rows.device).cumsum(0)
    cuts = torch.searchsorted(rows, starts).tolist()
    for k, (index, start, stop) in enumerate(pieces):
        if cuts[k] == cuts[k + 1]:
            continue
        weights = params[index][start:stop]
        local = rows[cuts[k] : cuts[k + 1]] - starts[k]
        weights[local] = weights[local] * factor[cuts[k] : cuts[k + 1]].to(weights.dtype)
        yield index, cuts[k + 1] - cuts[k]


def _numpy_views(tensors) -> tuple:
    return tuple(numpy_flat(t) for t in tensors)


def _numpy_able(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def _dampen_whole(param, forget, data, alpha: float, dampening: float) -> int:
    mask = select(forget, data, alpha)
    factor = torch.where(mask, dampening_factor(forget, data, dampening), 1.0)
    param.mul_(factor.to(dtype=param.dtype))
    return int(mask.sum())


def adaptive_alpha(
    forget: Mapping[str, torch.Tensor],
    data: Mapping[str, torch.Tensor],
    *,
    n_forget: int,
    n_data: int,
) -> tuple[float, float]:
    """ASSD's alpha: the p-th percentile of the pooled finite relative importances.

    Args:
        forget: forget-set importance per parameter name.
        data: reference importance per parameter name (same names and shapes).
        n_forget: number of samples in the forget set.
        n_data: number of samples in the whole training set (retain + forget).

    Returns:
        ``(alpha, p)``.
    """
    if any_sharded(forget, data):  # FSDP2 shards: counts all-reduced, values stay put
        return sharded_alpha(forget, data, n_forget=n_forget, n_data=n_data)
    p = forget_percentile(n_forget, n_data)
    return ratio_percentile(forget, data, p), p  # streamed: the ratios are never stored


def _check_hyperparameters(alpha: float, dampening: float) -> None:
    if math.isnan(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a non-negative number (inf selects nothing), got {alpha}.")
    if not math.isfinite(dampening) or dampening < 0:
        raise ValueError(f"dampening (lambda) must be a finite number >= 0, got {dampening}.")
