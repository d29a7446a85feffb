"""How batches become model inputs and targets, and a fast loader for tensors.

A batch may be a tensor, a tuple ``(x, y)`` or ``(x, ..., y)`` (the last item
is the target), or a dict whose label key (``y``, ``label``, ``labels``,
``target``, ``targets``) holds the target and whose other entries are the
model's inputs. Anything else: pass ``batch_fn(batch) -> (inputs, targets)``.

Example:
    >>> import torch
    >>> data = TensorData(torch.zeros(5, 3), torch.arange(5), batch_size=2)
    >>> [len(y) for _, y in data], data.n_samples
    ([2, 2, 1], 5)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

__all__ = ["TensorData", "batch_size_of", "forward", "split_batch", "to_device"]

LABEL_KEYS = ("y", "label", "labels", "target", "targets")

BatchFn = Callable[[Any], tuple[Any, Any]]


class TensorData:
    """Batches sliced straight from tensors: much faster than a DataLoader for tables.

    Args:
        inputs: tensor with samples along dim 0.
        targets: optional tensor of the same length.
        batch_size: samples per batch; the last batch may be smaller.
        shuffle: visit the rows in a new random order on every pass.
        seed: seed of the shuffling (pass k uses a generator seeded ``seed + k``).
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        batch_size: int = 256,
        shuffle: bool = False,
        seed: int = 0,
    ):
        if targets is not None and len(targets) != len(inputs):
            raise ValueError(
                f"inputs have {len(inputs)} rows but targets have {len(targets)}; "
                "pass tensors with one target per input row."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.inputs, self.targets, self.batch_size = inputs, targets, batch_size
        self.shuffle, self.seed, self._passes = shuffle, seed, 0

    @property
    def n_samples(self) -> int:
        return len(self.inputs)

    def __len__(self) -> int:
        return math.ceil(len(self.inputs) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        order = None
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self._passes)
            order = torch.randperm(len(self.inputs), generator=generator)
            self._passes += 1
        for start in range(0, len(self.inputs), self.batch_size):
            rows = (
                slice(start, start + self.batch_size)
                if order is None
                else order[start : start + self.batch_size]
            )
            y = None if self.targets is None else self.targets[rows]
            yield self.inputs[rows], y


def split_batch(batch: Any, batch_fn: BatchFn | None = None) -> tuple[Any, Any]:
    """Return ``(inputs, targets)`` of a batch; ``targets`` is None if it has none."""
    if batch_fn is not None:
        return batch_fn(batch)
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise ValueError("got an empty batch; each batch needs at least the inputs.")
        return (batch[0], None) if len(batch) == 1 else (batch[0], batch[-1])
    if isinstance(batch, dict):
        label = next((k for k in LABEL_KEYS if k in batch), None)
        inputs = {k: v for k, v in batch.items() if k != label}
        if len(inputs) == 1:
            inputs = next(iter(inputs.values()))
        return inputs, None if label is None else batch[label]
    raise ValueError(
        f"cannot read a batch of type {type(batch).__name__}; pass "
        "batch_fn=lambda batch: (inputs, targets) to say how."
    )


def forward(model: nn.Module, inputs: Any) -> torch.Tensor:
    """Call the model on tensor / tuple / dict inputs and return its logits."""
    if isinstance(inputs, dict):
        out = model(**inputs)
    elif isinstance(inputs, (tuple, list)):
        out = model(*inputs)
    else:
        out = model(inputs)
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ValueError(
        f"the model returned {type(out).__name__}; it must return a tensor of logits, "
        "an object with .logits, or a tuple whose first item is the logits."
    )


def to_device(tree: Any, device: torch.device) -> Any:
    """Move every tensor in a nested structure to ``device``."""
    return tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) else t, tree)


def batch_size_of(inputs: Any) -> int:
    """Number of samples in a batch: the first dimension of its first tensor."""
    leaves = [t for t in tree_flatten(inputs)[0] if isinstance(t, torch.Tensor)]
    if not leaves or leaves[0].dim() == 0:
        raise ValueError("a batch holds no tensor with a batch dimension.")
    return leaves[0].shape[0]


def check_finite_inputs(inputs: Any, index: int) -> None:
    """Refuse NaN/inf in floating-point inputs, naming the batch."""
    for t in tree_flatten(inputs)[0]:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(
                f"batch {index} contains NaN or infinite input values; clean or impute "
                "them before unlearning (importances would be NaN)."
            )
