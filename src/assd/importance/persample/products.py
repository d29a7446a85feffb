"""``out += left.T @ right`` over many rows, split so that every CPU thread takes a share.

The factorised per-sample squares of a ``Linear`` weight (and autograd's own
weight gradient) are a product that reduces over the batch: ``(B, out)^T``
times ``(B, in)``, with ``B`` much larger than ``out`` and ``in``. On CPU,
MKL runs this shape slowly with more than one thread (on 2 shared cores under
``OMP_WAIT_POLICY=PASSIVE``, 0.55 ms for 1024 x 3 x 100). Cut into one equal
slice of rows per thread, run as one batched product (each thread takes a
slice) and summed, it took 0.036 ms, and the flights MLP's 1024 x 100 x 134
layer 0.30 ms instead of 0.83 ms (``python benchmarks/row_product.py
--rounds 5``; docs/performance.md, section 6).

Example:
    >>> import torch
    >>> left, right = torch.randn(1000, 3), torch.randn(1000, 5)
    >>> out = torch.zeros(3, 5)
    >>> _ = add_row_product_(out, left, right, pieces=4)
    >>> torch.allclose(out, left.T @ right, atol=1e-4)
    True
"""

from __future__ import annotations

import torch

__all__ = ["MIN_PIECE_ROWS", "add_row_product_"]

MIN_PIECE_ROWS = 64  # below this, one product is as fast as the pieces


def add_row_product_(
    out: torch.Tensor, left: torch.Tensor, right: torch.Tensor, *, pieces: int | None = None
) -> torch.Tensor:
    """``out += left.T @ right`` for ``(B, m)`` and ``(B, n)``; returns ``out``.

    Args:
        out: the ``(m, n)`` accumulator, changed in place.
        left: ``(B, m)``.
        right: ``(B, n)``.
        pieces: slices of rows (default: the CPU threads torch uses; off the
            CPU, one product).
    """
    rows = left.shape[0]
    if pieces is None:
        pieces = torch.get_num_threads() if out.device.type == "cpu" else 1
    size = rows // max(pieces, 1)
    if pieces < 2 or size < MIN_PIECE_ROWS:
        return out.addmm_(left.T, right)
    whole = size * pieces
    first = left[:whole].reshape(pieces, size, -1).transpose(1, 2)
    second = right[:whole].reshape(pieces, size, -1)
    out.add_(torch.bmm(first, second).sum(0))
    if whole < rows:  # fewer than `pieces` rows left over
        out.addmm_(left[whole:].T, right[whole:])
    return out
