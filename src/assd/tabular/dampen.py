"""An SSD-family method on table rows, with the training-set importance from the cache.

:func:`dampen_rows` runs the method (I_D computed once per weights and data and
reused, or derived for the rows kept); :func:`evaluation_batches` builds the
forget / retained / held-out sets its outcome and guard score.
"""

from __future__ import annotations

import time

import numpy as np

from ..batches import TensorData
from ..methods.ssd import SSD
from .cache import cached_importance, data_key
from .model import TrainConfig
from .task import Rows

__all__ = ["MAX_EVAL_ROWS", "dampen_rows", "evaluation_batches"]


def dampen_rows(
    algorithm: SSD,
    model,
    train: Rows,
    forget: Rows,
    retain: Rows,
    config: TrainConfig,
    *,
    folder=None,
    memo: dict | None = None,
    progress: bool = False,
    evaluate: dict | None = None,
    digest: str | None = None,
):
    """Run an SSD-family ``algorithm`` with the full-data importance from the cache.

    ``evaluate``: evaluation sets for the outcome and guard (:func:`evaluation_batches`).
    ``digest``: the order-free digest of ``train`` if already computed (the check
    that the table is the training data computes it): the sample estimator's
    cache key, since its importance is a sum over rows and does not depend on
    their order; otherwise the rows are hashed in order for the key.

    With ``reference="retain"`` and the sample estimator, the retain importance
    is derived exactly from the cached full one (:meth:`assd.Importance.without`).

    Returns:
        ``(UnlearnResult, cache info)``.
    """
    options = {k: v for k, v in algorithm.importance_options.items() if k != "progress"}
    forget_data = _batches(forget, config)
    if algorithm.reference == "retain" and options["estimator"] != "sample":
        # batch-estimator importances do not subtract: pass over the retain rows instead
        info = {"path": None, "hit": False, "saved": False, "note": "retain set, not cached"}
        result = algorithm.unlearn(model, forget=forget_data, retain=_batches(retain, config),
                                   n_data=len(train), evaluate=evaluate)  # fmt: skip
        return result, info
    tick = time.perf_counter()
    full, info = cached_importance(
        model, _batches(train, config), options=options, folder=folder, memo=memo,
        data_key=lambda: _rows_key(train, options, digest), progress=progress,
    )  # fmt: skip
    info["seconds"] = round(time.perf_counter() - tick, 3)  # of the pass over D, or the load
    info["paths"] = full.path_counts() or None  # per-sample paths, by parameter elements
    # with reference="retain" the method derives I_retain = (n I_D - k I_Df) / (n - k) exactly
    result = algorithm.unlearn(
        model, forget=forget_data, importance=full, n_data=len(train), evaluate=evaluate
    )
    return result, info


def _rows_key(train: Rows, options: dict, digest: str | None) -> str:
    if digest is not None and options.get("estimator") == "sample":
        return f"set:{digest}"  # any order of the same rows: the same sums
    return data_key(train.x, train.y)


def evaluation_batches(forget: Rows, retain: Rows, held_out: Rows | None, config) -> dict:
    """The outcome / guard sets of a table request: the forget rows, the retained rows
    (a seeded sample of at most ``MAX_EVAL_ROWS``) and the labelled held-out rows."""
    size = max(config.batch_size, 4096)
    sets = {"forget": TensorData(forget.x, forget.y, batch_size=size),
            "retain": _sample(retain, size)}  # fmt: skip
    if held_out is not None and len(held_out):
        sets["test"] = _sample(held_out, size)
    return sets


MAX_EVAL_ROWS = 50_000


def _sample(rows: Rows, batch_size: int) -> TensorData:
    if len(rows) <= MAX_EVAL_ROWS:
        return TensorData(rows.x, rows.y, batch_size=batch_size)
    keep = np.sort(np.random.default_rng(0).choice(len(rows), MAX_EVAL_ROWS, replace=False))
    return TensorData(rows.x[keep], rows.y[keep], batch_size=batch_size)


def _batches(rows: Rows, config: TrainConfig) -> TensorData:
    return TensorData(rows.x, rows.y, batch_size=config.batch_size)
