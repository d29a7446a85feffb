"""The input contract: what a batch and a model's output may be, and how they are read.

Data (``data=``, ``forget=``, ``retain=``) is an *iterable of batches*: a
``DataLoader``, an :class:`TensorData`, a list of batches, ... A batch may be

- a tensor: inputs only (label-free methods such as LFSSD);
- a tuple/list ``(x, y)``, or ``(x1, ..., xk, y)``: the last item is the
  target and **every** other item is passed to the model, in order:
  ``model(x1, ..., xk)`` (so ``(ids, mask, y)`` reaches the model whole);
- a mapping (``dict``, Hugging Face ``BatchEncoding``) whose label key (``y``,
  ``label``, ``labels``, ``target``, ``targets``) holds the target; the other
  entries are the model's keyword inputs: ``model(**inputs)`` (a mapping with
  a single input entry is passed positionally);
- anything else, read by ``batch_fn(batch) -> (inputs, targets)``.

The model's output may be a tensor of logits, an object with ``.logits``
(Hugging Face ``ModelOutput``), a mapping with a ``"logits"`` entry, a tuple
holding exactly one tensor, or whatever ``output_fn(output)`` picks.

Refused, each with a message that names the fix (see :mod:`assd.contract`):
a bare ``Dataset`` (rows, not batches), a ``DataLoader`` with
``drop_last=True``, a tuple output with more than one tensor, and targets
that do not fit the default cross-entropy (negative labels such as the
ignored label -100, classes outside the output's width, float regression
targets, a single-output model); pass ``loss_fn`` for those.

Example:
    >>> import torch
    >>> data = TensorData(torch.zeros(5, 3), torch.arange(5), batch_size=2)
    >>> [len(y) for _, y in data], data.n_samples
    ([2, 2, 1], 5)
    >>> inputs, y = split_batch((torch.zeros(2, 3), torch.ones(2, 3), torch.tensor([0, 1])))
    >>> len(inputs), y.tolist()
    (2, [0, 1])
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from .contract import ContractError

__all__ = [
    "TensorData",
    "batch_size_of",
    "forward",
    "n_rows",
    "split_batch",
    "take_rows",
    "to_device",
    "using_output_fn",
]

LABEL_KEYS = ("y", "label", "labels", "target", "targets")

BatchFn = Callable[[Any], tuple[Any, Any]]
OutputFn = Callable[[Any], torch.Tensor]

_OUTPUT_FN: contextvars.ContextVar[OutputFn | None] = contextvars.ContextVar(
    "assd_output_fn", default=None
)


class TensorData:
    """Batches sliced straight from tensors: much faster than a DataLoader for tables.

    Args:
        inputs: tensor with samples along dim 0, or a mapping of such tensors of one
            length (a tokenizer's ``input_ids``, ``attention_mask``, ...: each batch is
            then a mapping of their rows, passed as ``model(**inputs)``).
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
        n = n_rows(inputs)
        if targets is not None and len(targets) != n:
            raise ValueError(
                f"inputs have {n} rows but targets have {len(targets)}; "
                "pass tensors with one target per input row."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.inputs, self.targets, self.batch_size = inputs, targets, batch_size
        self.shuffle, self.seed, self._passes = shuffle, seed, 0

    @property
    def n_samples(self) -> int:
        return n_rows(self.inputs)

    def __len__(self) -> int:
        return math.ceil(self.n_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        order, n = None, self.n_samples
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self._passes)
            order = torch.randperm(n, generator=generator)
            self._passes += 1
        for start in range(0, n, self.batch_size):
            rows = (
                slice(start, start + self.batch_size)
                if order is None
                else order[start : start + self.batch_size]
            )
            y = None if self.targets is None else self.targets[rows]
            yield take_rows(self.inputs, rows), y


def n_rows(inputs) -> int:
    """Rows of a tensor, or of a mapping of tensors that must all have that many."""
    if not isinstance(inputs, Mapping):
        return len(inputs)
    lengths = {k: len(v) for k, v in inputs.items()}
    if not lengths or len(set(lengths.values())) != 1:
        raise ValueError(f"a mapping of inputs needs tensors of one length, got {lengths}.")
    return next(iter(lengths.values()))


def take_rows(inputs, rows):
    """``inputs[rows]``, of a tensor or of every tensor of a mapping."""
    if isinstance(inputs, Mapping):
        return {k: v[rows] for k, v in inputs.items()}
    return inputs[rows]


def split_batch(batch: Any, batch_fn: BatchFn | None = None) -> tuple[Any, Any]:
    """Return ``(inputs, targets)`` of a batch; ``targets`` is None if it has none.

    ``(x, y)`` gives ``(x, y)``; ``(x1, ..., xk, y)`` gives ``((x1, ..., xk), y)``;
    a mapping gives its non-label entries (one entry: its value) and its label.
    """
    if batch_fn is not None:
        return batch_fn(batch)
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise ValueError("got an empty batch; each batch needs at least the inputs.")
        if len(batch) == 1:
            return batch[0], None
        return (batch[0] if len(batch) == 2 else tuple(batch[:-1])), batch[-1]
    if isinstance(batch, Mapping):
        label = next((k for k in LABEL_KEYS if k in batch), None)
        inputs = {k: v for k, v in batch.items() if k != label}
        if len(inputs) == 1:
            inputs = next(iter(inputs.values()))
        return inputs, None if label is None else batch[label]
    raise ValueError(
        f"cannot read a batch of type {type(batch).__name__}; pass "
        "batch_fn=lambda batch: (inputs, targets) to say how."
    )


@contextlib.contextmanager
def using_output_fn(output_fn: OutputFn | None) -> Iterator[None]:
    """Within the block, :func:`forward` reads logits with ``output_fn`` (None: the default)."""
    token = _OUTPUT_FN.set(output_fn)
    try:
        yield
    finally:
        _OUTPUT_FN.reset(token)


def forward(model: nn.Module, inputs: Any, *, output_fn: OutputFn | None = None) -> torch.Tensor:
    """Call the model on tensor / tuple / mapping inputs and return its logits.

    ``output_fn`` (or the one set by :func:`using_output_fn`) picks the logits
    from the output; without one, see :func:`logits_of`.
    """
    if isinstance(inputs, Mapping):
        out = model(**inputs)
    elif isinstance(inputs, (tuple, list)):
        out = model(*inputs)
    else:
        out = model(inputs)
    pick = output_fn or _OUTPUT_FN.get()
    return pick(out) if pick is not None else logits_of(out)


def logits_of(out: Any) -> torch.Tensor:
    """The logits in a model's output: the tensor itself, ``.logits``, ``["logits"]``,
    or the one tensor of a tuple; an ambiguous tuple is refused."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if logits is None and isinstance(out, Mapping):
        logits = out.get("logits")
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, (tuple, list)):
        tensors = [i for i, item in enumerate(out) if isinstance(item, torch.Tensor)]
        if len(tensors) == 1:
            return out[tensors[0]]
        if len(tensors) > 1:
            raise ContractError(
                f"the model returned a {type(out).__name__} of {len(tensors)} tensors (at "
                f"positions {tensors}); assd cannot tell which one is the logits. Pass "
                "output_fn=lambda out: out[i] with the position i of the logits."
            )
    raise ContractError(
        f"the model returned {type(out).__name__}; it must return a tensor of logits, an "
        "object with .logits, a dict with 'logits', or a tuple holding one tensor. Otherwise "
        "pass output_fn=lambda out: <the logits tensor>."
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
