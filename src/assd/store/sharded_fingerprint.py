"""A fingerprint of weights that shards can compute together, whatever the world size.

The SHA-256 tree of :mod:`assd.store.fingerprint` needs every byte of a
tensor in one place. Here each element contributes ``mix(name, index) *
(bits + 1)`` to a per-tensor sum modulo 2**64, where ``bits`` is the
element's bit pattern, ``index`` its position in the whole (unsharded)
tensor and ``mix`` a SplitMix64 hash of both. Sums add up across shards, so
every rank hashes its own rows, the sums are all-reduced (as 16-bit limbs,
so no integer overflows), and one SHA-256 over names, dtypes, shapes and
sums gives the same stamp at any world size, unsharded models included.

It detects changed weights (any single changed element changes its sum), not
a deliberate forgery: it guards against stale importances, nothing more.
Stamps carry the prefix ``s1:``.

Example:
    >>> import torch
    >>> a = sharded_fingerprint(torch.nn.Linear(2, 1))
    >>> a[:3], len(a)
    ('s1:', 67)
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = ["PREFIX", "sharded_fingerprint"]

PREFIX = "s1:"
_BLOCK = 1 << 20
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def sharded_fingerprint(model: nn.Module) -> str:
    """The ``s1:`` stamp of every parameter and buffer; collective under a process group."""
    items = sorted(model.state_dict(keep_vars=False).items())
    items = [(n, t) for n, t in items if isinstance(t, torch.Tensor)]
    sums = np.array([_tensor_sum(name, t) for name, t in items], dtype=np.uint64)
    limbs = np.stack([(sums >> np.uint64(s)) & np.uint64(0xFFFF) for s in (0, 16, 32, 48)], 1)
    total = torch.from_numpy(limbs.astype(np.int64))
    if _grouped():
        moved = total.to(_device())
        dist.all_reduce(moved)
        total = moved.cpu()
    top = hashlib.sha256()
    for (name, t), limb in zip(items, total.tolist(), strict=True):
        value = sum(int(v) << s for v, s in zip(limb, (0, 16, 32, 48), strict=True)) % (1 << 64)
        top.update(f"{name}|{t.dtype}|{tuple(t.shape)}|{value}|".encode())
    return PREFIX + top.hexdigest()


def _tensor_sum(name: str, t: torch.Tensor) -> int:
    """This rank's share of the tensor's sum (replicated tensors: rank 0's whole)."""
    offset, local = 0, t.detach()
    if callable(getattr(t, "to_local", None)):
        local = t.to_local().detach()
        if not _row_sharded(t):
            return 0 if dist.get_rank() else _tensor_sum(name, t.full_tensor())
        rows = t.shape[0] if t.dim() else 1
        per_row = t.numel() // max(rows, 1)
        size = -(-rows // dist.get_world_size())
        offset = min(dist.get_rank() * size, rows) * per_row
    elif _grouped() and dist.get_rank() != 0:
        return 0  # the same on every rank: counted once
    flat = local.reshape(-1).cpu()
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    words = flat.contiguous().view(_signed(flat.element_size())).numpy()
    words = words.view(_UNSIGNED[flat.element_size()]).astype(np.uint64)
    salt = np.uint64(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))
    total = np.uint64(0)
    with np.errstate(over="ignore"):
        for start in range(0, words.size, _BLOCK):
            index = np.arange(offset + start, offset + start + words[start:start + _BLOCK].size,
                              dtype=np.uint64)  # fmt: skip
            part = _mix(index ^ salt) * (words[start : start + _BLOCK] + np.uint64(1))
            total = total + part.sum(dtype=np.uint64)
    return int(total)


def _row_sharded(t) -> bool:
    placements = list(t.placements)
    return len(placements) == 1 and getattr(placements[0], "dim", None) == 0 and t.dim() > 0


def _signed(size: int) -> torch.dtype:
    return {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[size]


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (wrapping uint64 arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _grouped() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
