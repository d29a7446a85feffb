"""Walking many tensors as one flat sequence, a bounded block at a time.

The post-stage (ratios, percentile, selection, dampening) treats all
parameters of a model as one long vector. Doing that literally would copy
the whole model; doing it per parameter costs a few Python-level operations
per parameter, which dominates for models of many small tensors. Here large
tensors are cut into blocks of at most :data:`BLOCK` elements (views, no
copy) and runs of small tensors are concatenated into shared blocks (a small
copy into a reused buffer).

Example:
    >>> import torch
    >>> plan_blocks([torch.zeros(3), torch.zeros(2), torch.zeros(9)], block=5)
    [[(0, 0, 3), (1, 0, 2)], [(2, 0, 5)], [(2, 5, 9)]]
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["BLOCK", "Scratch", "gather_block", "gather_numpy", "numpy_flat", "plan_blocks"]

BLOCK = 1 << 18  # elements per block: bounds every temporary of the post-stage (1 MiB float32)


def plan_blocks(
    tensors: list[torch.Tensor], *, block: int | None = None, keys: list | None = None
) -> list[list[tuple[int, int, int]]]:
    """Cut tensors, flattened and in order, into blocks of at most ``block`` elements.

    Args:
        tensors: the tensors, in the order their elements are visited.
        block: the most elements per block (default :data:`BLOCK`).
        keys: one per tensor (default dtype and device); only tensors with
            equal keys share a block.

    Returns:
        One list of pieces ``(tensor index, start, stop)`` per block: either a
        slice of one large tensor, or several whole small tensors.
    """
    block = block or BLOCK
    blocks, current, filled, kind = [], [], 0, None
    for index, t in enumerate(tensors):
        n, key = t.numel(), (t.dtype, t.device) if keys is None else keys[index]
        if current and (n >= block or filled + n > block or key != kind):
            blocks.append(current)
            current, filled = [], 0
        if n >= block:
            blocks.extend([(index, s, min(s + block, n))] for s in range(0, n, block))
            continue
        current.append((index, 0, n))
        filled, kind = filled + n, key
    if current:
        blocks.append(current)
    return blocks


def gather_block(flats, pieces: list[tuple[int, int, int]]) -> torch.Tensor:
    """The values of one block as a tensor: a view for a single piece, else a new tensor."""
    if len(pieces) == 1:
        index, start, stop = pieces[0]
        return flats[index][start:stop]
    return torch.cat([flats[i][a:b] for i, a, b in pieces])


def numpy_flat(t: torch.Tensor) -> np.ndarray:
    """A flat NumPy view of a CPU tensor's memory (a copy only if it is not contiguous)."""
    return t.detach().numpy().reshape(-1)


def gather_numpy(
    flats: list[np.ndarray], pieces: list[tuple[int, int, int]], scratch: Scratch, name: str
) -> np.ndarray:
    """The values of one block as an array: a view for a single piece, else a reused buffer."""
    if len(pieces) == 1:
        index, start, stop = pieces[0]
        return flats[index][start:stop]
    parts = [flats[i][a:b] for i, a, b in pieces]
    out = scratch.get(name, sum(p.size for p in parts), parts[0].dtype)
    return np.concatenate(parts, out=out)


class Scratch:
    """Reused NumPy buffers by name, grown on demand, so per-block work allocates nothing.

    Example:
        >>> scratch = Scratch()
        >>> a = scratch.get("x", 4, np.float32)
        >>> scratch.get("x", 3, np.float32).ctypes.data == a.ctypes.data
        True
    """

    def __init__(self):
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, dtype) -> np.ndarray:
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < n or buffer.dtype != dtype:
            buffer = self.buffers[name] = np.empty(n, dtype=dtype)
        return buffer[:n]
