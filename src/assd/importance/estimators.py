"""The two estimators and two objectives behind ``compute_importance``.

Objectives (what is differentiated):
    ``loss``         the loss of the batch (cross-entropy by default); its
                     gradients are accumulated squared (diagonal Fisher).
    ``output_norm``  the mean over samples of the squared L2 norm of the
                     output (loss-free SSD); gradients accumulated as ``|g|``.

Estimators (how gradients are averaged):
    ``batch``   one gradient per batch of the batch-mean objective, averaged
                over batches (what the SSD/ASSD reference code does).
    ``sample``  one gradient per sample, averaged over samples: squared
                per-sample gradients from layer hooks where the algebra allows,
                ``torch.func`` or a per-sample loop elsewhere (:mod:`assd.importance.persample`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from ..batches import batch_size_of, check_finite_inputs, forward, split_batch, to_device
from ..contract import BatchError, check_targets, model_errors
from ..parameters import all_finite, model_device, set_mode
from .objectives import OBJECTIVES, add_, objective_value
from .persample.engine import SampleEngine, rows_per_chunk

__all__ = [
    "CHUNK_BYTES",
    "ESTIMATORS",
    "OBJECTIVES",
    "Sums",
    "accumulate",
    "default_memory_budget",
    "sample_chunk",
]

ESTIMATORS = ("batch", "sample")
# The one default, of compute_importance and of every method: the per-sample estimator
# (batch-size invariant; measured better in docs/benchmarks.md).
DEFAULT_ESTIMATOR = "sample"


@dataclass
class Sums:
    """Importance before averaging: per-parameter sums and what they were summed over.

    Sums (unlike means) add up across data shards, which is what makes the
    distributed computation exact: reduce every field, then call :meth:`finish`.
    """

    names: list[str]
    tensors: list[torch.Tensor]
    n_samples: int
    n_batches: int
    batch_size: int  # size of the first batch (the largest, for TensorData)
    paths: dict[str, str] | None = None  # sample estimator: how each parameter was computed

    def finish(self, estimator: str) -> dict[str, torch.Tensor]:
        """Divide by the batch or sample count and check the result; returns tensors by name."""
        if self.n_samples == 0:
            raise ValueError(
                "the data set is empty (no batch held a sample); pass at least one sample."
            )
        divisor = self.n_batches if estimator == "batch" else self.n_samples
        torch._foreach_div_(self.tensors, float(divisor))
        tensors = dict(zip(self.names, self.tensors, strict=True))
        for name, t in tensors.items():
            if not all_finite(t):
                raise ValueError(
                    f"the importance of {name!r} is NaN or infinite: the loss overflowed or the "
                    "model produced non-finite outputs on this data. Check inputs and model."
                )
        return tensors


def accumulate(
    model: nn.Module,
    params: dict,
    data,
    *,
    objective,
    estimator,
    loss_fn,
    batch_fn,
    train_mode,
    max_memory,
    progress,
) -> Sums:
    """One pass over ``data``: the summed squared (or absolute) gradients, not yet averaged."""
    names = list(params)
    acc = [torch.zeros_like(params[n], dtype=torch.float32) for n in names]
    device = model_device(model)
    n_samples = n_batches = first_size = 0
    engine = None
    if estimator == "sample":
        budget = default_memory_budget(device) if max_memory is None else max_memory
        engine = SampleEngine(model, params, objective=objective, loss_fn=loss_fn, budget=budget)
        rows = _Rows(lambda x, y: engine.step(by_name, x, y))
        by_name = dict(zip(names, acc, strict=True))
    n_classes = None  # the output width, probed once when the default cross-entropy is used
    with set_mode(model, train=train_mode):
        for index, batch in enumerate(_progress(data, progress, estimator)):
            inputs, targets = split_batch(batch, batch_fn)
            size = batch_size_of(inputs)
            if size == 0:
                continue
            _check_finite_inputs(inputs, index)
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            if objective == "loss" and loss_fn is None:  # the default cross-entropy
                if n_classes is None:  # shapes first, then the output width, once
                    check_targets(targets, n_rows=size, n_classes=None, index=index)
                    n_classes = _output_width(model, inputs, index) or 0
                check_targets(targets, n_rows=size, n_classes=n_classes or None, index=index)
            if engine is None:
                with model_errors("importance pass", index):  # say where it failed, and the fix
                    logits = forward(model, inputs)
                    _batch_step(params, names, acc, logits, targets, objective, loss_fn)
            else:
                rows.add(index, inputs, targets, size)
            n_samples += size
            n_batches += 1
            first_size = first_size or size
        if engine is not None:
            rows.flush()
    paths = dict(engine.paths) if engine is not None else None
    return Sums(names, acc, n_samples, n_batches, first_size, paths)


MERGE_ROWS = 4096  # rows of a table per step of the sample estimator (see _Rows)


class _Rows:
    """Consecutive batches of table rows, joined into steps of up to ``MERGE_ROWS`` rows.

    The sample estimator is a sum over samples, so how rows are grouped does not
    change it (up to float rounding); every step has a fixed cost (hooks, and on
    a CPU each operation on a large tensor wakes the thread pool), so fewer,
    larger steps are faster (docs/performance.md, section 6: the flights
    request). Only 2-D floating-point inputs (rows of features) with 1-D or no
    targets are joined: their models' activations are small per row. Anything
    else (images, token ids, several input tensors) is stepped batch by batch. An error
    in a joined step is named by the batch that raises it on its own (the
    step's batches are rerun one by one to find it; the sums are abandoned).
    """

    def __init__(self, step):
        self.step, self.parts, self.size = step, [], 0

    def add(self, index: int, inputs, targets, size: int) -> None:
        if not _table_rows(inputs, targets):  # stepped on its own, in order
            self.flush()
            with model_errors("importance pass", index):
                self.step(inputs, targets)
            return
        if not self._joins(inputs, targets):
            self.flush()
        self.parts.append((index, inputs, targets))
        self.size += size
        if self.size >= MERGE_ROWS:
            self.flush()

    def _joins(self, inputs, targets) -> bool:
        if not self.parts:
            return True
        _, x, y = self.parts[0]
        if (targets is None) != (y is None):
            return False
        same = [(inputs, x)] + ([] if y is None else [(targets, y)])
        return inputs.shape[1] == x.shape[1] and all(
            a.dtype == b.dtype and a.device == b.device for a, b in same
        )

    def flush(self) -> None:
        if not self.parts:
            return
        parts, self.parts, self.size = self.parts, [], 0
        if len(parts) == 1:
            with model_errors("importance pass", parts[0][0]):
                self.step(*parts[0][1:])
            return
        _, xs, ys = zip(*parts, strict=True)
        try:
            with model_errors("importance pass", parts[0][0]):
                self.step(torch.cat(xs), None if ys[0] is None else torch.cat(ys))
        except BatchError:
            for index, x, y in parts:  # name the batch that fails on its own, if one does
                with model_errors("importance pass", index):
                    self.step(x, y)
            raise


def _table_rows(inputs, targets) -> bool:
    """Whether a batch is rows of features: a 2-D float tensor, 1-D or no targets."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2:
        return False
    one_d = targets is None or (isinstance(targets, torch.Tensor) and targets.dim() == 1)
    return inputs.is_floating_point() and one_d


def _output_width(model: nn.Module, inputs, index: int) -> int | None:
    """Classes the model outputs, from one eval-mode forward on the batch's first rows."""
    rows = tree_map(lambda t: t[:2] if isinstance(t, torch.Tensor) and t.dim() else t, inputs)
    with model_errors("importance pass", index), torch.no_grad(), set_mode(model, train=False):
        logits = forward(model, rows)
    return logits.shape[1] if logits.dim() >= 2 else None


def _check_finite_inputs(inputs, index: int) -> None:
    """:func:`~assd.batches.check_finite_inputs` with the fast check; it raises the error."""
    leaves = tree_flatten(inputs)[0]
    floats = [t for t in leaves if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not all(all_finite(t) for t in floats):
        check_finite_inputs(inputs, index)


def _batch_step(params, names, acc, logits, targets, objective, loss_fn):
    value = objective_value(objective, logits, targets, loss_fn)
    grads = torch.autograd.grad(value, [params[n] for n in names], allow_unused=True)
    pairs = [(a, g) for a, g in zip(acc, grads, strict=True) if g is not None]
    if pairs:
        add_([a for a, _ in pairs], [g for _, g in pairs], objective)


def sample_chunk(
    n_elements: int, max_memory: int | None = None, *, itemsize: int = 4, device="cpu"
) -> int:
    """Samples per ``vmap`` call of the sample estimator's ``torch.func`` path: as many as fit.

    Each sample's gradients take ``n_elements * itemsize`` bytes (plus a
    float32 copy for other precisions). Larger chunks run the model on larger
    batches and were faster (benchmarks/sample_estimator.py: ResNet18 ~2x from
    1 to 12 samples per call), so the chunk fills the budget; by default
    :func:`default_memory_budget`.

    Example:
        >>> sample_chunk(1000, max_memory=40_000), sample_chunk(1000, max_memory=1)
        (10, 1)
    """
    per_sample = n_elements * (itemsize + (4 if itemsize != 4 else 0))
    budget = default_memory_budget(device) if max_memory is None else max_memory
    return rows_per_chunk(per_sample, budget)


def default_memory_budget(device="cpu") -> int:
    """Bytes of per-sample gradients held at once by default.

    CPU: 512 MiB, or a quarter of the memory the system reports available if
    that is less. GPU: a quarter of the device's free memory.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 4
    return min(CHUNK_BYTES, _available_memory() // 4)


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * CHUNK_BYTES  # unknown: the full default


CHUNK_BYTES = 512 * 2**20  # default per-sample gradient budget on CPU (see default_memory_budget)


def _progress(data, enabled: bool, label: str):
    if not enabled:
        return data
    from tqdm.auto import tqdm

    return tqdm(data, desc=f"importance ({label})", leave=False, disable=None)  # off unless a TTY
