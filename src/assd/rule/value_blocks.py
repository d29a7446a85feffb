"""The value blocks a percentile is taken over: caller-made chunks, or the ratios
``I_Df / I_D`` computed block by block into one reused buffer (never stored whole).

Each source yields NumPy blocks (views of CPU tensors; other devices are copied
one block at a time) and a strided sample of its values, as
:mod:`assd.rule.rank_search` reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch

from .blocks import BLOCK, Scratch, gather_block, gather_numpy, numpy_flat, plan_blocks


def _strided_sample(blocks, size: int, total: int) -> tuple[np.ndarray, np.dtype]:
    """Every stride-th finite value of the blocks (as float64), and their common dtype."""
    stride, position, pieces, dtype = max(1, total // size), 0, [], np.dtype(np.float32)
    for block in blocks:
        dtype = max(dtype, block.dtype)
        picked = block[(-position) % stride :: stride]
        pieces.append(picked[np.isfinite(picked)].astype(np.float64))
        position += block.size
    return (np.concatenate(pieces) if pieces else np.empty(0)), dtype


def _host(t: torch.Tensor) -> np.ndarray:
    """A NumPy view (CPU) or copy (other devices) of a float32/float64 tensor."""
    return t.detach().cpu().numpy()


class _Chunks:
    """Blocks of caller-made chunks (float32/float64; other floats are converted)."""

    def __init__(self, make_chunks: Callable[[], Iterable[torch.Tensor]]):
        self.make_chunks = make_chunks

    def blocks(self) -> Iterator[np.ndarray]:
        for chunk in self.make_chunks():
            if not chunk.is_floating_point():
                raise ValueError(f"percentile needs floating-point values, got {chunk.dtype}.")
            if chunk.dtype not in (torch.float32, torch.float64):
                chunk = chunk.float()
            flat = chunk.detach().reshape(-1)
            for start in range(0, flat.numel(), BLOCK):
                yield _host(flat[start : start + BLOCK])

    def sample(self, size: int, total: int) -> tuple[np.ndarray, np.dtype]:
        """A pass over the chunks keeping every stride-th finite value (as float64)."""
        return _strided_sample(self.blocks(), size, total)


class _Ratios:
    """Blocks of ``forget / data``, computed into one buffer that is reused."""

    def __init__(self, forget: Mapping[str, torch.Tensor], data: Mapping[str, torch.Tensor]):
        for name, f in forget.items():
            if name not in data or data[name].shape != f.shape:
                raise ValueError(f"forget and data importances differ for {name!r}.")
        self.f, self.d = list(forget.values()), [data[n] for n in forget]
        pairs = list(zip(self.f, self.d, strict=True))
        self.plan = plan_blocks(self.f, keys=[(f.dtype, d.dtype, f.device) for f, d in pairs])
        self.numpy = [_numpy_able(f) and _numpy_able(d) for f, d in pairs]
        self.f_np = [
            numpy_flat(f) if ok else None for f, ok in zip(self.f, self.numpy, strict=True)
        ]
        self.d_np = [
            numpy_flat(d) if ok else None for d, ok in zip(self.d, self.numpy, strict=True)
        ]

    def sample(self, size: int, total: int) -> tuple[np.ndarray, np.dtype]:
        """Every stride-th ratio, computed from strided views: no pass over everything."""
        stride, position = max(1, total // size), 0

        def picks():
            nonlocal position
            for f, d in zip(self.f, self.d, strict=True):
                start = (-position) % stride
                f, d = f.detach().reshape(-1), d.detach().reshape(-1).to(f.device)
                ratio = f[start::stride] / d[start::stride]
                position += f.numel()
                yield _host(ratio if ratio.dtype in _NUMPY_FLOATS else ratio.float())

        return _strided_sample(picks(), 1, 1)

    def blocks(self) -> Iterator[np.ndarray]:
        scratch = Scratch()
        for pieces in self.plan:
            if not self.numpy[pieces[0][0]]:  # another device or dtype: divide with torch
                f = {i: self.f[i].detach().reshape(-1) for i, _, _ in pieces}
                d = {i: self.d[i].detach().reshape(-1).to(f[i].device) for i, _, _ in pieces}
                ratio = gather_block(f, pieces) / gather_block(d, pieces)
                yield _host(ratio if ratio.dtype in _NUMPY_FLOATS else ratio.float())
                continue
            fs = gather_numpy(self.f_np, pieces, scratch, "f")
            ds = gather_numpy(self.d_np, pieces, scratch, "d")
            yield np.divide(fs, ds, out=scratch.get("r", fs.size, np.result_type(fs, ds)))


_NUMPY_FLOATS = (torch.float32, torch.float64)


def _numpy_able(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in _NUMPY_FLOATS
