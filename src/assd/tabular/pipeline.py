"""Train a model on a table: the ``assd train`` path, callable from Python.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.random(200), "c": rng.choice(["a", "b"], 200)})
    >>> frame["label"] = np.where(frame.x > 0.5, "high", "low")
    >>> trained = train_table(frame, target="label", config=TrainConfig(epochs=3))
    >>> trained.task.class_names, sorted(trained.extra["metrics"])
    (['high', 'low'], ['test', 'train'])
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace

from ..data.preprocess import DEFAULT_MAX_LEVELS
from ..store.checkpoints import check_finite
from .cache import data_key
from .defaults import check_columns, check_target, fit_schedule, warn_few_steps
from .evaluate import classify
from .model import TabularModel, TrainConfig, train_mlp
from .task import Rows, TableTask, ids_digest

__all__ = ["data_changes", "train_table", "training_rows"]

log = logging.getLogger("assd")


def train_table(
    frame,
    *,
    target: str,
    id_column: str | None = None,
    split: str = "random",
    test_share: float = 0.2,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    max_levels: int = DEFAULT_MAX_LEVELS,
    date_format: str | None = None,
    config: TrainConfig | None = None,
    source: str | None = None,
    progress: bool = False,
    importance: bool = False,
) -> TabularModel:
    """Fit the preprocessing on the training rows, train the MLP, measure it.

    Args:
        frame: the table (pandas DataFrame).
        target, id_column, split, test_share, features, categorical, max_levels,
            date_format: see :meth:`assd.tabular.TableTask.fit`.
        config: training settings (:class:`TrainConfig`); ``batch_size=None`` or
            ``epochs=None`` fit them to the training rows
            (:func:`assd.tabular.defaults.fit_schedule`).
        source: a name for the data (e.g. its file name), kept with the model.
        progress: show a progress bar over epochs.
        importance: also make the default request's pass over the training rows
            (:mod:`assd.tabular.precompute`); :meth:`TabularModel.save` writes it into the
            folder as the importance cache, so the first ``assd unlearn`` reads it.

    Returns:
        A :class:`TabularModel`; its ``extra`` holds the settings, split sizes,
        a digest of the training row ids and train/test metrics.
    """
    config = config or TrainConfig()
    start = time.perf_counter()
    check_target(frame, target)
    task = TableTask.fit(
        frame,
        target=target,
        id_column=id_column,
        split=split,
        test_share=test_share,
        seed=config.seed,
        features=features,
        categorical=categorical,
        max_levels=max_levels,
        date_format=date_format,
    )
    check_columns(frame, task)
    rows = task.encode(frame)
    train, test = training_rows(rows), rows.subset(rows.test & (rows.y >= 0).numpy())
    batch_size, epochs = fit_schedule(
        len(train), batch_size=config.batch_size, epochs=config.epochs
    )
    config = replace(config, batch_size=batch_size, epochs=epochs)
    warn_few_steps(len(train), batch_size, epochs)
    log.info("training %s on %d rows, %d features", config.model, len(train), train.x.shape[1])
    n_classes = len(task.class_names)
    model = train_mlp(train.x, train.y, n_classes=n_classes, config=config, progress=progress)
    check_finite(model, what="the trained model")
    majority = int(train.y.bincount(minlength=n_classes).argmax())
    scores = {"class_names": task.class_names, "majority_class": majority}
    metrics = {"train": classify(model, train.x, train.y, **scores)}
    if len(test):
        metrics["test"] = classify(model, test.x, test.y, **scores)
    digest = train_set_digest(train)
    files, importance_seconds = {}, None
    if importance:
        from .precompute import request_importance

        files, importance_seconds = request_importance(model, train, config, digest=digest)
    extra = {
        "training": asdict(config),
        "data": {
            "source": source,
            "n_rows": len(rows),
            "n_train": len(train),
            "n_test": len(test),
            "train_ids_sha256": ids_digest(train.ids),
            "train_set_sha256": digest,
        },
        "metrics": metrics,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if importance_seconds is not None:
        extra["importance_seconds"] = round(importance_seconds, 3)  # within "seconds"
    return TabularModel(model, task, config.model, extra, files=files)


def training_rows(rows: Rows) -> Rows:
    """The rows a model was trained on: not held out, with a known label."""
    return rows.subset(~rows.test & (rows.y >= 0).numpy())


def data_changes(tabular: TabularModel, rows: Rows) -> str | None:
    """Why the training rows of ``rows`` are not those ``tabular`` was trained on, or None.

    Compares the ids and the encoded contents (features and labels) of the
    training rows with digests stored at training time, so a grown, shrunk,
    re-sorted or edited table is noticed even without an id column.
    """
    stored = tabular.extra.get("data", {})
    train = training_rows(rows)
    if "train_set_sha256" in stored:  # order-free: a re-sorted table is the same table
        if stored["train_set_sha256"] == train_set_digest(train):
            return None
        return (
            f"the training rows of this table ({len(train)}) are not the "
            f"{stored.get('n_train', '?')} rows the model was trained on (rows added, removed "
            "or edited, ids or labels changed)"
        )
    if stored.get("train_ids_sha256") not in (None, ids_digest(train.ids)):
        return (
            f"the training rows of this table ({len(train)}) are not the "
            f"{stored.get('n_train', '?')} rows the model was trained on (rows added, removed "
            "or re-sorted, or labels changed)"
        )
    return None


def train_set_digest(train: Rows) -> str:
    """SHA-256 of the training rows (ids, features, labels) in id order: the same for a
    re-sorted copy of the table, different if a row is added, removed or edited."""
    import numpy as np

    order = np.argsort(train.ids.astype(str), kind="stable")
    rows = train.subset(order)
    return data_key(rows.x, rows.y) + ids_digest(rows.ids)[:16]
