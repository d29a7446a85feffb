"""Two steps of the data-entry error experiment (:mod:`assd.experiments.errors`):
finding the wrong rows with :func:`assd.tabular.label_issues.discover` (once per mistake
model, scored against the injected rows) and measuring a model on the cell's sets."""

from __future__ import annotations

import numpy as np
import torch

from ..metrics import accuracy
from ..tabular.model import TrainConfig, train_mlp
from ..tabular.task import Rows


def _discovery(ctx, data, config, seed: int) -> dict:
    """Find the wrong rows once per mistake model; precision and recall against the truth."""
    from ..tabular.label_issues import discover

    if ctx.found is None:
        keep = torch.arange(ctx.noisy.x.shape[1])
        if ctx.groups is not None:  # the fold models do not see the held-out group's inputs
            names = data.feature_names
            col = config.group_column
            keep = torch.tensor([i for i, n in enumerate(names) if not n.startswith(f"{col}=")])
        n_classes = len(data.class_names)
        ctx.found = discover(
            ctx.noisy.x[:, keep], ctx.noisy.y, n_classes=n_classes, groups=ctx.groups,
            folds=config.folds, seed=seed,
            train=lambda x, y: train_mlp(x, y, n_classes=n_classes, config=ctx.train_config),
        )  # fmt: skip
    found, truth = ctx.found.written, np.zeros(len(ctx.clean), dtype=bool)
    truth[ctx.errors.rows] = True
    hits = int((found & truth).sum())
    return {
        "n_found": int(found.sum()),
        "n_flagged": int(ctx.found.flagged.sum()),
        "found_precision": hits / found.sum() if found.any() else float("nan"),
        "found_recall": hits / truth.sum() if truth.any() else float("nan"),
        "discover_seconds": ctx.found.seconds,
        "found_groups": [str(g) for g in (ctx.found.verdict.groups if ctx.found.verdict else [])],
    }


def _measure(model, ctx, data) -> dict:
    from ..metrics import classification_summary, predict

    def acc(rows: Rows | None) -> float | None:
        return None if rows is None else accuracy(model, _loader(rows, ctx.train_config, 8192))

    pred, target = predict(model, _loader(data.test, ctx.train_config, 8192))
    labels = list(range(len(data.class_names)))
    test = classification_summary(target.numpy(), pred.numpy(), labels=labels,
                                  majority_class=data.majority)  # fmt: skip
    forget_true = ctx.clean.subset(ctx.errors.rows)
    return {
        "test": test["accuracy"],
        "test_balanced": test["balanced_accuracy"],
        "test_macro_f1": test["macro_f1"],
        "majority_baseline": test["majority_baseline"],
        "train_clean": acc(ctx.clean),
        "retain": acc(ctx.retain),
        "forget_noisy": acc(ctx.forget),
        "forget_true": acc(forget_true),
        "affected_test": acc(ctx.affected_test),
    }


def _loader(rows: Rows, config: TrainConfig, batch_size: int | None = None):
    from ..batches import TensorData

    return TensorData(rows.x, rows.y, batch_size=batch_size or config.batch_size)
