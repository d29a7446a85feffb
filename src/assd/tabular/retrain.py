"""Retrain a table model from its recorded recipe without every row its ledger forgot.

The new model keeps the task (columns, classes, preprocessing, held-out rows)
and the training settings stored with the model, and is trained from scratch
on the training rows that no request forgot. Its ledger is the old one plus a
``retrain`` entry that links the two and starts a fresh drift baseline.

The preprocessing (scaling ranges, category levels) is the one fitted at the
first training, forgotten rows included: it is kept so that held-out figures
stay comparable; train a new model with ``assd train`` on a table without
those rows where that matters.

Example:
    >>> import numpy as np, pandas as pd
    >>> from assd.tabular import TrainConfig, train_table, trained_ids
    >>> from assd.tabular.stream import unlearn_request
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.random(200)})
    >>> frame["label"] = np.where(frame.x > 0.5, "high", "low")
    >>> model = train_table(frame, target="label", config=TrainConfig(epochs=2))
    >>> one, _ = unlearn_request(model, frame, trained_ids(model, frame)[:4], over_budget="apply")
    >>> fresh, report = retrain_model(one, frame)
    >>> fresh.ledger.entries[-1]["kind"], report["n_excluded"], report["n_train"]
    ('retrain', 4, 156)
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict

from ..batches import TensorData
from ..metrics import accuracy
from ..store.fingerprint import fingerprint
from .model import TabularModel, train_mlp
from .pipeline import train_set_digest, training_rows
from .stream import history_of, report_part

__all__ = ["retrain_model"]


def retrain_model(
    tabular: TabularModel, frame, *, progress: bool = False
) -> tuple[TabularModel, dict]:
    """Train a fresh model on the training rows of ``frame`` that no request forgot.

    Returns:
        ``(new model with its ledger, report)``: rows used and left out, accuracy on the
        rows kept and the held-out rows before and after, and seconds.
    """
    start = time.perf_counter()
    ledger = history_of(tabular)
    rows = tabular.task.encode(frame)
    train = training_rows(rows)
    forgotten = ledger.forgotten(train.ids)
    keep = train.subset(~forgotten)
    if not len(keep):
        raise ValueError("every training row was forgotten; there is nothing to retrain on.")
    config = tabular.config()
    model = train_mlp(keep.x, keep.y, n_classes=len(tabular.task.class_names), config=config,
                      progress=progress)  # fmt: skip
    held_out = rows.subset(rows.test & (rows.y >= 0).numpy())
    sets = {"retain": keep, **({"test": held_out} if len(held_out) else {})}
    scores = {name: {"before": _acc(tabular.model, s), "after": _acc(model, s), "n": len(s)}
              for name, s in sets.items()}  # fmt: skip
    seconds = round(time.perf_counter() - start, 3)
    data = {"n_train": len(keep), "train_set_sha256": train_set_digest(keep)}
    ledger.append(
        "retrain", weights_before=ledger.weights, weights_after=fingerprint(model),
        recipe=asdict(config), data=data, n_excluded=int(forgotten.sum()),
        baseline={name: s["after"] for name, s in scores.items()},
        drift={name: 0.0 for name in scores}, retrain_due=False, cost_seconds=seconds,
    )  # fmt: skip
    extra = copy.deepcopy(tabular.extra)
    extra.setdefault("data", {}).update(data)
    extra["retrained"] = {"without": int(forgotten.sum()), "from_weights": ledger.entries[-2]
                          ["weights_after"]}  # fmt: skip
    new = TabularModel(model, tabular.task, tabular.architecture, extra, ledger)
    report = {"n_train": len(keep), "n_excluded": int(forgotten.sum()), "accuracy": scores,
              "seconds": seconds, "ledger": report_part(ledger.entries[-1])}  # fmt: skip
    return new, report


def _acc(model, rows) -> float:
    return accuracy(model, TensorData(rows.x, rows.y, batch_size=4096))
