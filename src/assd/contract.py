"""Enforcing the input contract of :mod:`assd.batches`: refusals that name the fix.

Three kinds of checks:

- :func:`check_data`: the data is an iterable of batches, not a bare
  ``Dataset`` of rows, and no loader drops its last batch;
- :func:`check_targets`: the targets fit the default cross-entropy (class
  indices in ``[0, C)``, one per output row), checked per batch;
- :class:`BatchError`: an error raised inside the user's model, wrapped with
  the pass, the batch index, the original message and the likely fix.

Example:
    >>> import torch
    >>> check_targets(torch.tensor([0, 2, -100]), n_rows=3, n_classes=3)
    Traceback (most recent call last):
    ...
    assd.contract.ContractError: targets hold negative labels (e.g. -100...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "BatchError",
    "ContractError",
    "check_data",
    "check_targets",
    "describe_fn",
    "likely_fix",
    "model_errors",
]

_HERE = Path(__file__).resolve().parent  # the assd package

LOADER_HINT = (
    "wrap it in a loader: torch.utils.data.DataLoader(dataset, batch_size=64), or "
    "assd.forget_retain_loaders(dataset, forget_ids) for a forget and a retain loader"
)


class ContractError(ValueError):
    """Input that breaks the contract of :mod:`assd.batches`; the message names the fix."""


def check_data(data: Any, *, what: str = "data", every_row: bool = True) -> None:
    """Refuse a bare ``Dataset`` (torch or Hugging Face) and, when ``every_row`` must
    count (importance, evaluation), a ``drop_last`` loader.

    Raises:
        ContractError: (a ValueError) naming the fix.
    """
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(data, DataLoader):
        if data.drop_last and every_row:
            raise ContractError(
                f"{what} is a DataLoader with drop_last=True: the rows of the last, partial "
                "batch would be silently left out of the importance and of the sample "
                "counts. Build it with drop_last=False (the default)."
            )
        return
    hf_dataset = type(data).__module__.split(".")[0] == "datasets" and hasattr(data, "column_names")
    if hf_dataset or (isinstance(data, Dataset) and not isinstance(data, IterableDataset)):
        raise ContractError(
            f"{what} is a {type(data).__name__}, a data set of single rows, not an iterable "
            f"of batches; {LOADER_HINT}."
        )


def check_targets(
    targets: torch.Tensor | None, *, n_rows: int, n_classes: int | None, index: int = 0
) -> None:
    """Check a batch's targets against the default cross-entropy.

    Args:
        targets: the batch's targets (None: nothing to check).
        n_rows: samples in the batch.
        n_classes: width of the model's output (None: not known yet).
        index: the batch's position, for the message.

    Raises:
        ValueError: for targets without a batch dimension (single rows), float
            targets (regression), negative labels (-100), classes ``>= n_classes``
            or a model with one output.
    """
    if targets is None:
        return
    fix = "pass loss_fn=(lambda logits, targets: <mean loss>) that fits them"
    if not isinstance(targets, torch.Tensor) or targets.dim() == 0:
        raise ContractError(
            f"batch {index} has a single target value ({type(targets).__name__}), not one "
            f"per row: the data yields single rows, not batches; {LOADER_HINT}."
        )
    if targets.shape[0] != n_rows:
        raise ContractError(
            f"batch {index} has {n_rows} input rows but {targets.shape[0]} targets; the "
            "target must be the last item of each batch (or pass batch_fn)."
        )
    if targets.is_floating_point():
        raise ContractError(
            f"batch {index} has float targets (regression?) but the default loss is "
            f"cross-entropy over class indices; {fix}, e.g. torch.nn.functional.mse_loss "
            "on logits.squeeze(-1), or convert class labels to integers."
        )
    if n_classes == 1:
        raise ContractError(
            "the model has a single output, so the default cross-entropy is 0 for every "
            f"sample and every importance would be 0; {fix} (e.g. mse_loss for regression)."
        )
    low = int(targets.min()) if targets.numel() else 0
    if low < 0:
        raise ContractError(
            f"targets hold negative labels (e.g. {low}, the usual 'ignored' label) in batch "
            f"{index}; the default cross-entropy would silently skip them. Drop those "
            f"rows, or {fix} and handles them (e.g. ignore_index=-100)."
        )
    high = int(targets.max()) if targets.numel() else 0
    if n_classes is not None and high >= n_classes:
        raise ContractError(
            f"batch {index} holds class {high} but the model outputs {n_classes} classes "
            "(0 to {}); check that the last item of each batch is the class label, or pass "
            "batch_fn=lambda batch: (inputs, targets).".format(n_classes - 1)
        )


class BatchError(ValueError):
    """An error raised while the model ran on one batch, with where and what to do.

    Attributes:
        stage: which pass (e.g. ``"importance on the forget set (forget=)"``).
        index: the batch's position in the pass.
    """

    def __init__(self, stage: str, index: int, error: BaseException):
        self.stage, self.index, self.error = stage, index, error
        super().__init__(
            f"{stage}, batch {index}: the model raised {type(error).__name__}: "
            f"{_first_line(error)}. Likely fix: {likely_fix(error)}"
        )

    def named(self, stage: str) -> BatchError:
        """The same error with the pass named (the caller knows which data it was)."""
        return BatchError(stage, self.index, self.error)


@contextlib.contextmanager
def model_errors(stage: str, index: int) -> Iterator[None]:
    """Wrap any error raised in the block (but contract refusals) in a :class:`BatchError`."""
    try:
        yield
    except ContractError:
        raise
    except Exception as error:
        if isinstance(error, ValueError) and _raised_by_assd(error):  # says what to do
            raise
        raise BatchError(stage, index, error) from error


def _raised_by_assd(error: BaseException) -> bool:
    """Whether the innermost frame of the traceback is assd's own code."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).parent.is_relative_to(_HERE)


def likely_fix(error: BaseException) -> str:
    """A one-sentence guess at the fix for an error raised inside a model."""
    text = str(error).lower()
    if isinstance(error, TypeError) and ("argument" in text or "positional" in text):
        return (
            "the model was called with every batch item but the last as its inputs "
            "(model(x1, ..., xk), or model(**dict)); if batches carry items the model does "
            "not take (row ids, ...), pass batch_fn=lambda batch: (inputs, targets)."
        )
    if "vmap" in text or "functorch" in text or "data-dependent" in text:
        return (
            "the per-sample estimator traces the model with torch.func.vmap, which this "
            "model does not support; use estimator='batch'."
        )
    if "out of bounds" in text or ("index" in text and "range" in text):
        return (
            "targets must be class indices in [0, number of outputs); check the label column, "
            "or pass loss_fn= for other targets."
        )
    if any(word in text for word in ("shape", "size", "dimension", "mat1", "expected input")):
        return (
            "the batch's inputs do not fit the model; check the input shapes, or pass "
            "batch_fn= (what goes in) and output_fn= (which output is the logits)."
        )
    if "dtype" in text or "expected scalar type" in text or "long" in text:
        return "the batch's dtypes do not fit the model or the loss; convert them, or pass loss_fn."
    return (
        "run the model on one batch by hand to see the error; see assd.batches for the "
        "batches and outputs assd accepts (batch_fn=, output_fn=, loss_fn= adapt others)."
    )


def describe_fn(fn: Any) -> str | None:
    """A stable name for a loss function, recorded with an importance (None: the default).

    Example:
        >>> import torch.nn.functional as F
        >>> describe_fn(None), describe_fn(F.mse_loss)
        (None, 'torch.nn.functional.mse_loss')
    """
    if fn is None:
        return None
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(target, '__module__', '?')}.{target.__qualname__}"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(".") if lines else "(no message)"
