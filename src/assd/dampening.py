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

import torch

from .percentile import forget_percentile, percentile_of_chunks

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
    _check_hyperparameters(alpha, dampening)
    mask = select(forget, data, alpha)
    factor = torch.where(mask, dampening_factor(forget, data, dampening), 1.0)
    with torch.no_grad():
        param.mul_(factor.to(device=param.device, dtype=param.dtype))
    return int(mask.sum())


def dampen_parameters_(
    params: Mapping[str, torch.Tensor],
    forget: Mapping[str, torch.Tensor],
    data: Mapping[str, torch.Tensor],
    *,
    alpha: float,
    dampening: float = 1.0,
) -> dict[str, tuple[int, int]]:
    """Dampen every named parameter in place.

    Returns:
        ``{name: (selected, elements)}`` for every parameter.
    """
    _check_hyperparameters(alpha, dampening)
    counts = {}
    for name, param in params.items():
        selected = dampen_(param, forget[name], data[name], alpha=alpha, dampening=dampening)
        counts[name] = (selected, param.numel())
    return counts


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
    p = forget_percentile(n_forget, n_data)
    names = list(forget)
    total = sum(forget[n].numel() for n in names)

    def ratios():
        for name in names:  # one parameter's ratios at a time, never all at once
            yield relative_importance(forget[name], data[name])

    return percentile_of_chunks(ratios, p, total=total), p


def _check_hyperparameters(alpha: float, dampening: float) -> None:
    if math.isnan(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a non-negative number (inf selects nothing), got {alpha}.")
    if not math.isfinite(dampening) or dampening < 0:
        raise ValueError(f"dampening (lambda) must be a finite number >= 0, got {dampening}.")
