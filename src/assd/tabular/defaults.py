"""Training defaults that fit the table, and the checks a new table gets before training.

The ASSD paper trains its MLP with batch 1024 for 25 epochs, on tables of
about 180,000 rows: 4,000+ optimizer steps. On a table of 455 rows the same
setting is one step per epoch, 25 steps in all: the model hardly learns, and
unlearning then has nothing to change. So ``assd train`` scales both to the
rows it trains on (the rule, :func:`fit_schedule`):

- batch size: the paper's 1024, halved while an epoch would have fewer than
  20 batches, but not below 32;
- epochs: the paper's 25, raised while the run would have fewer than 500
  optimizer steps, but not above 200.

Tables of 20,480 rows or more get the paper's setting unchanged. A model that
trains fewer than 200 steps gets a warning. Explicit ``--batch-size`` and
``--epochs`` are kept as given (``--batch-size 1024 --epochs 25`` is the
paper's setup on any table).

Example:
    >>> fit_schedule(262_000), fit_schedule(455), fit_schedule(142)
    ((1024, 25), (32, 34), (32, 100))
"""

from __future__ import annotations

import logging
import math

import numpy as np

__all__ = [
    "MIN_STEPS",
    "check_columns",
    "check_target",
    "fit_schedule",
    "warn_few_steps",
]

log = logging.getLogger("assd")

PAPER_BATCH_SIZE, PAPER_EPOCHS = 1024, 25
MIN_BATCHES_PER_EPOCH, MIN_BATCH_SIZE = 20, 32
TARGET_STEPS, MAX_EPOCHS = 500, 200
MIN_STEPS = 200  # fewer optimizer steps than this: warn
CONTINUOUS_LEVELS = 20  # a float target with more distinct non-integer values is refused
CODE_LEVELS = (3, 12)  # whole-number columns with this many distinct values get a hint


def fit_schedule(
    n_rows: int, *, batch_size: int | None = None, epochs: int | None = None
) -> tuple[int, int]:
    """``(batch_size, epochs)`` for ``n_rows`` training rows; given values are kept."""
    if batch_size is None:
        batch_size = PAPER_BATCH_SIZE
        while batch_size > MIN_BATCH_SIZE and n_rows / batch_size < MIN_BATCHES_PER_EPOCH:
            batch_size //= 2
    if epochs is None:
        per_epoch = math.ceil(max(n_rows, 1) / batch_size)
        epochs = min(max(PAPER_EPOCHS, math.ceil(TARGET_STEPS / per_epoch)), MAX_EPOCHS)
    return batch_size, epochs


def warn_few_steps(n_rows: int, batch_size: int, epochs: int) -> int:
    """Warn when training would take fewer than :data:`MIN_STEPS` steps; returns the steps."""
    steps = math.ceil(n_rows / batch_size) * epochs
    if steps < MIN_STEPS:
        log.warning(
            "the model trains only %d optimizer steps (%d rows in batches of %d, %d epochs); "
            "with fewer than %d it may not learn the table, and unlearning then has little "
            "to change. Lower --batch-size or raise --epochs (or leave both out: they then "
            "fit the table).",
            steps, n_rows, batch_size, epochs, MIN_STEPS,
        )  # fmt: skip
    return steps


def check_target(frame, target: str) -> None:
    """Refuse a target that looks continuous: a classifier would make each value a class.

    Raises:
        ValueError: the target is a float column with more than
            :data:`CONTINUOUS_LEVELS` distinct values that are not whole numbers.
    """
    if target not in frame.columns:
        return  # TableTask.fit says which columns there are
    column = frame[target].dropna()
    if column.dtype.kind != "f":
        return
    values = np.unique(column.to_numpy())
    if len(values) > CONTINUOUS_LEVELS and not np.all(values == np.round(values)):
        raise ValueError(
            f"the target {target!r} looks continuous ({len(values)} distinct numbers such as "
            f"{', '.join(f'{v:g}' for v in values[:3])}); assd trains classifiers, so each "
            "value would become its own class. Bin it into a few classes first, e.g. "
            f"frame['{target}_class'] = pandas.qcut(frame['{target}'], 3, "
            "labels=['low', 'mid', 'high']), and train on that column."
        )


def check_columns(frame, task) -> None:
    """Hints for a fitted task: whole-number codes kept numeric, levels beyond the cap."""
    prep = task.preprocessor
    for name in prep.numeric:
        column = frame[name].dropna()
        if column.dtype.kind in "iuf" and len(column):
            values = np.unique(column.to_numpy())
            whole = np.all(values == np.round(values))
            if whole and CODE_LEVELS[0] <= len(values) <= CODE_LEVELS[1]:
                log.warning(
                    "hint: column %r holds only %d distinct whole numbers; if they are codes "
                    "of categories rather than amounts, pass --categorical %s (Python: "
                    "categorical=[%r]) so that each code gets its own input.",
                    name, len(values), name, name,
                )  # fmt: skip
    for name, levels in prep.levels.items():
        n = frame[name].nunique()
        if n > len(levels) and len(levels) == prep.max_levels:
            log.warning(
                "hint: column %r has %d levels; only the %d most frequent get their own input "
                "and the rest share one 'other' input, where errors in them cannot be told "
                "apart. Raise --max-levels to keep more.",
                name, n, prep.max_levels,
            )  # fmt: skip
