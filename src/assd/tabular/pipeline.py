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

from .defaults import check_columns, check_target, fit_schedule, warn_few_steps
from .evaluate import classify
from .model import TabularModel, TrainConfig, train_mlp
from .task import Rows, TableTask, ids_digest

__all__ = ["train_table", "training_rows"]

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
    max_levels: int = 200,
    config: TrainConfig | None = None,
    source: str | None = None,
    progress: bool = False,
) -> TabularModel:
    """Fit the preprocessing on the training rows, train the MLP, measure it.

    Args:
        frame: the table (pandas DataFrame).
        target, id_column, split, test_share, features, categorical, max_levels:
            see :meth:`assd.tabular.TableTask.fit`.
        config: training settings (:class:`TrainConfig`); ``batch_size=None`` or
            ``epochs=None`` fit them to the training rows
            (:func:`assd.tabular.defaults.fit_schedule`).
        source: a name for the data (e.g. its file name), kept with the model.
        progress: show a progress bar over epochs.

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
    majority = int(train.y.bincount(minlength=n_classes).argmax())
    scores = {"class_names": task.class_names, "majority_class": majority}
    metrics = {"train": classify(model, train.x, train.y, **scores)}
    if len(test):
        metrics["test"] = classify(model, test.x, test.y, **scores)
    extra = {
        "training": asdict(config),
        "data": {
            "source": source,
            "n_rows": len(rows),
            "n_train": len(train),
            "n_test": len(test),
            "train_ids_sha256": ids_digest(train.ids),
        },
        "metrics": metrics,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return TabularModel(model, task, config.model, extra)


def training_rows(rows: Rows) -> Rows:
    """The rows a model was trained on: not held out, with a known label."""
    return rows.subset(~rows.test & (rows.y >= 0).numpy())
