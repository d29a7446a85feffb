"""Selection, dampening and alpha on FSDP2 shards: each rank edits its own rows only.

A parameter sharded by ``torch.distributed.fsdp.fully_shard`` is a DTensor
whose local tensor is a view of the rank's slice of the weights; its two
importances, computed by :mod:`assd.importance.sharded`, are DTensors with
the same layout. The SSD rule is elementwise, so each rank applies
:func:`assd.rule.dampening.dampen_parameters_` to its local views (nothing
is gathered, no ``summon_full_params``) and only the per-parameter counts
are all-reduced. Alpha comes from
:func:`assd.rule.distributed_percentile.sharded_ratio_percentile`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist

from .distributed_percentile import _device, _grouped, local_tensor, sharded_ratio_percentile
from .percentile import forget_percentile

__all__ = ["any_sharded", "dampen_shards_", "is_sharded", "sharded_alpha"]


def is_sharded(t) -> bool:
    """Whether ``t`` is a DTensor (a sharded parameter or importance)."""
    return callable(getattr(t, "to_local", None)) and hasattr(t, "placements")


def any_sharded(*mappings: Mapping[str, torch.Tensor]) -> bool:
    """Whether any tensor of the mappings is a DTensor."""
    return any(is_sharded(t) for m in mappings for t in m.values())


def dampen_shards_(
    params: Mapping[str, torch.Tensor],
    forget: Mapping[str, torch.Tensor],
    data: Mapping[str, torch.Tensor],
    *,
    alpha: float,
    dampening: float = 1.0,
    dampen_local,
) -> dict[str, tuple[int, int]]:
    """:func:`~assd.rule.dampening.dampen_parameters_` on each rank's local shards.

    ``dampen_local`` is the single-process rule, applied to the local shards
    (passed in by :mod:`assd.rule.dampening`, which calls this module).

    Returns:
        ``{name: (selected, elements)}`` over all ranks (the same on every rank).
    """

    local = {n: local_tensor(p) for n, p in params.items()}
    for name, p in local.items():
        f, d = local_tensor(forget[name]), local_tensor(data[name])
        if f.shape != p.shape or d.shape != p.shape:
            raise ValueError(
                f"the importance shard of {name!r} has shape {tuple(f.shape)} but the weight "
                f"shard has {tuple(p.shape)}: the importance was sharded differently from the "
                "model. Compute it on the sharded model, or load it with load_sharded_importance."
            )
    counts = dampen_local(
        local,
        {n: local_tensor(forget[n]) for n in local},
        {n: local_tensor(data[n]) for n in local},
        alpha=alpha,
        dampening=dampening,
    )
    selected = torch.tensor([counts[n][0] for n in params], dtype=torch.int64, device=_device())
    if _grouped():
        dist.all_reduce(selected)
    return {n: (int(k), params[n].numel()) for n, k in zip(params, selected.tolist(), strict=True)}


def sharded_alpha(
    forget: Mapping[str, torch.Tensor],
    data: Mapping[str, torch.Tensor],
    *,
    n_forget: int,
    n_data: int,
) -> tuple[float, float]:
    """ASSD's ``(alpha, p)`` over every rank's shards (see :func:`~assd.adaptive_alpha`)."""
    p = forget_percentile(n_forget, n_data)
    return sharded_ratio_percentile(forget, data, p), p
