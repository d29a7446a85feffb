"""A hash of a model's weights, to tell whether a saved importance still fits it."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

__all__ = ["fingerprint"]


def fingerprint(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer: names, dtypes, shapes and bytes.

    Any change to any weight or running statistic changes the fingerprint.

    Example:
        >>> a = fingerprint(nn.Linear(2, 1))
        >>> len(a)
        64
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict(keep_vars=False).items()):
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()
