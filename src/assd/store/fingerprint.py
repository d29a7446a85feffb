"""A hash of a model's weights, to tell whether a saved importance still fits it.

The fingerprint is a SHA-256 tree: every tensor is cut into pieces of
:data:`PIECE` bytes, the pieces are hashed in parallel threads (``hashlib``
releases the GIL, so the threads run on separate cores), and the names,
dtypes, shapes and piece digests are hashed again in order. It is as
collision-resistant as SHA-256 and scales with free cores (a plain SHA-256
stream is one core at ~1.4 GB/s: 0.25 s for ViT-B's 343 MB). Fingerprints
carry the prefix ``t1:``; an older plain SHA-256 stamp (64 hex digits, no
prefix) is still checked the old way (:func:`matches`).

Example:
    >>> a = fingerprint(nn.Linear(2, 1))
    >>> a[:3], len(a)
    ('t1:', 67)
    >>> matches(nn.Linear(2, 1), a)
    False
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

__all__ = ["PIECE", "fingerprint", "matches", "tensor_digest"]

PIECE = 8 * 2**20  # bytes hashed per task
_PREFIX = "t1:"


def fingerprint(model: nn.Module, *, threads: int | None = None) -> str:
    """Tree SHA-256 over every parameter and buffer: names, dtypes, shapes and bytes.

    Any change to any weight or running statistic changes the fingerprint.

    Args:
        model: the model.
        threads: hashing threads (default: the CPUs this process may use, at most 8).
    """
    items = [(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode(), t)
             for name, t in sorted(model.state_dict(keep_vars=False).items())
             if isinstance(t, torch.Tensor)]  # fmt: skip
    return _PREFIX + tensor_digest(items, threads=threads)


def tensor_digest(items: list[tuple[bytes, torch.Tensor]], *, threads: int | None = None) -> str:
    """The SHA-256 tree of :func:`fingerprint` over ``(header, tensor)`` pairs, in order.

    Example:
        >>> len(tensor_digest([(b"x|", torch.zeros(3))]))
        64
    """
    views = [(header, _bytes(t)) for header, t in items]
    pieces = [view[s : s + PIECE] for _, view in views for s in range(0, len(view), PIECE)]
    threads = threads or min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else os.cpu_count() or 1)  # fmt: skip
    if threads > 1 and sum(len(p) for p in pieces) > 2 * PIECE:  # else threads cost more
        with ThreadPoolExecutor(threads) as pool:
            digests = list(pool.map(lambda piece: hashlib.sha256(piece).digest(), pieces))
    else:
        digests = [hashlib.sha256(piece).digest() for piece in pieces]
    top, digests = hashlib.sha256(), iter(digests)  # pieces were listed in this order
    for header, view in views:
        top.update(header)
        for _ in range(0, len(view), PIECE):
            top.update(next(digests))
    return top.hexdigest()


def matches(model: nn.Module, stamp: str) -> bool:
    """Whether ``stamp`` (from :func:`fingerprint`, or an older plain SHA-256) fits the weights."""
    if stamp.startswith(_PREFIX):
        return fingerprint(model) == stamp
    if stamp.startswith("s1:"):  # computed on a sharded model (any world size)
        from .sharded_fingerprint import sharded_fingerprint

        return sharded_fingerprint(model) == stamp
    return _stream_sha256(model) == stamp


def _bytes(tensor: torch.Tensor) -> memoryview:
    t = tensor.detach().cpu().contiguous()
    if not t.numel():
        return memoryview(b"")
    return t.reshape(-1).view(torch.uint8).numpy().data.cast("B")


def _stream_sha256(model: nn.Module) -> str:
    """The fingerprint of earlier versions: one SHA-256 stream (no prefix)."""
    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict(keep_vars=False).items()):
        if isinstance(t, torch.Tensor):
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(_bytes(t))
    return digest.hexdigest()
