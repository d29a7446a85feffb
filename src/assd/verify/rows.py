"""Row identity: which rows of one set are rows of another, by their bytes.

The one helper behind both checks that ask "are these rows in that set?": the
forget rows found in the training data (:mod:`assd.verify.membership`) and the
forget rows found in an evaluation set (:mod:`assd.verify.outcome`).

Example:
    >>> import torch
    >>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]])
    >>> keys = row_keys(x)
    >>> bool(keys[0] == keys[2]), bool(keys[0] == keys[1])
    (True, False)
    >>> y = torch.tensor([0, 1, 1])
    >>> bool(row_keys(x, y)[0] == row_keys(x, y)[2])  # same input, other label
    False
"""

from __future__ import annotations

import torch

__all__ = ["row_keys"]

_CHUNK = 2**21  # int64 elements hashed at once (~16 MiB)


def row_keys(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """A 64-bit fingerprint of each row's bytes: its input and, if given, its target.

    Equal rows get equal keys; different rows collide with probability about
    2**-64 (a seeded random linear map of the bytes, wrapping int64 arithmetic).
    Floats are compared by their bits (half precision widened to float32 first).
    """
    if len(x) == 0:
        return torch.empty(0, dtype=torch.long)
    flat = _as_ints(x)
    if y is not None:
        flat = torch.cat([flat.long(), _as_ints(y.reshape(len(x), -1)).long().to(flat.device)], 1)
    generator = torch.Generator().manual_seed(12345)
    weights = torch.randint(-(2**62), 2**62, (flat.shape[1],), generator=generator)
    weights = weights.to(flat.device)
    step = max(1, _CHUNK // max(flat.shape[1], 1))
    return torch.cat([(part.long() * weights).sum(1).cpu() for part in flat.split(step)])


def _as_ints(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` flattened, floats viewed as the integers of their bits."""
    flat = x.detach().contiguous().reshape(len(x), -1)
    if flat.is_floating_point():
        flat = flat.float() if flat.element_size() < 4 else flat
        flat = flat.view(torch.int32 if flat.element_size() == 4 else torch.int64)
    return flat
