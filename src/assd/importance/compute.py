"""``compute_importance``: one pass over the data, the importance of every trainable parameter.

Example:
    >>> import torch
    >>> from assd.batches import TensorData
    >>> model = torch.nn.Linear(3, 2)
    >>> data = TensorData(torch.randn(8, 3), torch.randint(0, 2, (8,)), batch_size=4)
    >>> imp = compute_importance(model, data)
    >>> imp.estimator, imp.n_samples, sorted(imp.tensors)
    ('sample', 8, ['bias', 'weight'])
"""

from __future__ import annotations

from torch import nn

from ..batches import using_output_fn
from ..contract import BatchError, check_data, describe_fn
from ..parameters import trainable_parameters
from ..store.fingerprint import fingerprint as weights_fingerprint
from . import distributed as distributed_
from .core import Importance
from .estimators import DEFAULT_ESTIMATOR, ESTIMATORS, OBJECTIVES, accumulate
from .sharded import is_sharded_model, sharded_importance

__all__ = ["compute_importance"]


def compute_importance(
    model: nn.Module,
    data,
    *,
    objective: str = "loss",
    estimator: str = DEFAULT_ESTIMATOR,
    loss_fn=None,
    batch_fn=None,
    train_mode: bool = False,
    max_memory: int | None = None,
    fingerprint: bool = True,
    progress: bool = False,
    distributed: bool | None = None,
    output_fn=None,
    reference: str | None = None,
    label: str = "data",
) -> Importance:
    """Importance of every trainable parameter of ``model`` on ``data``.

    The model is not changed: no ``.grad`` is written, its train/eval modes
    are restored, and in train mode its buffers (BatchNorm statistics) too.

    Args:
        model: any ``nn.Module``; inputs are moved to its device.
        data: an iterable of batches (DataLoader, :class:`~assd.TensorData`, ...).
        objective: ``"loss"`` (needs targets) or ``"output_norm"`` (label-free).
        estimator: ``"sample"`` (the default, as every method's: per-sample
            empirical Fisher, batch-size invariant: layer hooks where they apply,
            ``torch.func`` or a per-sample loop elsewhere; see :mod:`assd.importance.persample`)
            or ``"batch"`` (the SSD reference code: squared batch-mean gradients).
        loss_fn: ``loss_fn(logits, targets) -> mean loss``; cross-entropy by default.
        batch_fn: ``batch_fn(batch) -> (inputs, targets)`` for unusual batches.
        train_mode: run the model in train mode (batch statistics); ``batch`` only.
        max_memory: most bytes of per-sample gradients the ``sample`` estimator holds
            at once; more is faster (default: 512 MiB or a quarter of the available
            memory on CPU, a quarter of free memory on a GPU).
        fingerprint: record a hash of the weights, so a stale copy is refused later.
        progress: show a progress bar.
        distributed: split the pass across the processes of a ``torch.distributed``
            group (``None``: whenever a group of more than one process exists).
            Each process sums its shard (a :class:`~assd.TensorData` is split by
            batches; any other ``data`` must already be this process's shard,
            e.g. via ``DistributedSampler``), the sums are all-reduced, and every
            process gets the same result as one process would.
        output_fn: ``output_fn(model_output) -> logits`` for outputs that are not a
            tensor, ``.logits``, ``["logits"]`` or a tuple of one tensor.
        reference: what ``data`` is, recorded with the result: ``"full"`` (the
            whole training set) or ``"retain"`` (the rest after the forget rows);
            a method set to the other one then refuses it.
        label: what ``data`` is called in error messages.

    Raises:
        ValueError: for data that breaks the input contract of :mod:`assd.batches`
            (with the fix), and :class:`~assd.contract.BatchError` for an error
            raised inside the model (with the pass, the batch and the likely fix).

    Returns:
        An :class:`Importance`.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {sorted(OBJECTIVES)}.")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {sorted(ESTIMATORS)}.")
    if train_mode and estimator == "sample":
        raise ValueError(
            "the sample estimator needs eval mode (per-sample gradients have no batch "
            "statistics); use estimator='batch' with train_mode=True, or train_mode=False."
        )
    if reference not in (None, "full", "retain"):
        raise ValueError(f"reference must be 'full', 'retain' or None, got {reference!r}.")
    check_data(data, what=label)
    if is_sharded_model(model):  # FSDP2: every rank ends with its rows (importance/sharded.py)
        return sharded_importance(
            model, data, objective=objective, estimator=estimator, loss_fn=loss_fn,
            batch_fn=batch_fn, train_mode=train_mode, fingerprint=fingerprint,
            output_fn=output_fn, reference=reference, label=label,
        )  # fmt: skip
    params = trainable_parameters(model)
    stamp = weights_fingerprint(model) if fingerprint else None
    spread = distributed_.resolve(distributed)

    def local_sums():
        return accumulate(
            model,
            params,
            distributed_.shard(data) if spread else data,
            objective=objective,
            estimator=estimator,
            loss_fn=loss_fn,
            batch_fn=batch_fn,
            train_mode=train_mode,
            max_memory=max_memory,
            progress=progress and distributed_.is_main_process(),
        )

    try:
        with using_output_fn(output_fn):
            if spread:  # sum each shard, add the sums up, then divide: one process's result
                sums = distributed_.collectively(local_sums)
                distributed_.all_reduce_sums(sums)
            else:
                sums = local_sums()
    except BatchError as error:
        raise error.named(f"importance on {label}") from error.error
    return Importance(
        tensors=sums.finish(estimator),
        objective=objective,
        estimator=estimator,
        n_samples=sums.n_samples,
        n_batches=sums.n_batches,
        batch_size=sums.batch_size,
        train_mode=train_mode,
        fingerprint=stamp,
        loss=(describe_fn(loss_fn) or "cross_entropy") if objective == "loss" else None,
        reference=reference,
        paths=sums.paths,
    )
