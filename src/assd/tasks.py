"""What a model's outputs mean: the task fixes the default loss and how a model is scored.

Tasks (``task=`` in the methods and scorers, ``--task`` on the command line):

``classification``        logits ``(B, C)``, integer targets ``(B,)``.
``token-classification``  logits ``(B, L, C)``, integer targets ``(B, L)``; positions
                          labelled ``-100`` are ignored (the Hugging Face convention).
``causal-lm``             logits ``(B, L, V)``, targets ``(B, L)`` aligned with the
                          inputs (``labels=input_ids``): position ``t`` predicts the
                          target at ``t + 1``; ``-100`` positions are ignored.
``regression``            float targets with one value per output value.

Only the shapes can tell the tasks apart, so a task is *inferred* only where the
shapes allow one task (``(B, C)`` logits with ``(B,)`` integer targets; float
targets of the output's size); sequence logits fit two tasks and are refused
until the task is named. The old trap: with ``(B, L, C)`` logits and ``L == C``,
``argmax(1)`` and ``F.cross_entropy(logits, targets)`` both run, over the
wrong axis; every function here reads classes from the *last* axis.

Per row, a task gives the summed loss of its counted positions, how many
positions were counted, how many were predicted right (arg-max) and whether
all of them were (:func:`row_figures`). For ``causal-lm`` "all right" is
*extraction*: under teacher forcing every counted next token is the arg-max,
which is exactly when greedy decoding from the row's prefix (its first token and
any leading ``-100`` positions) reproduces the rest of the row.

Example:
    >>> import torch
    >>> logits = torch.zeros(2, 3, 3)  # length 3 == classes 3: the trap
    >>> logits[:, :, 1] = 1.0          # every position predicts class 1
    >>> targets = torch.tensor([[1, 1, -100], [1, 0, 2]])
    >>> f = row_figures("token-classification", logits, targets)
    >>> f.correct.tolist(), f.counted.tolist()
    ([2.0, 1.0], [2.0, 3.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE_INDEX",
    "SEQUENCE_TASKS",
    "TASKS",
    "RowFigures",
    "causal_lm_loss",
    "check_task",
    "default_loss",
    "infer_task",
    "regression_loss",
    "resolve_task",
    "row_figures",
    "token_classification_loss",
]

TASKS = ("classification", "token-classification", "causal-lm", "regression")
SEQUENCE_TASKS = ("token-classification", "causal-lm")
IGNORE_INDEX = -100

_NAME_IT = (
    "name the task: task='token-classification' (a label per position) or task='causal-lm' "
    "(labels = the input ids, each position predicting the next); on the command line "
    "--task token-classification or --task causal-lm (or pass a loss_fn= that fits them)"
)


def check_task(task: str | None) -> str | None:
    """``task`` if it is None or a known task; otherwise a ValueError listing them."""
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    return task


def infer_task(logits: torch.Tensor, targets: torch.Tensor) -> str:
    """The one task that the shapes of ``logits`` and ``targets`` allow.

    Raises:
        ValueError: sequence logits (two tasks fit them), or shapes that fit no task.
    """
    if targets.is_floating_point():
        if logits[0].numel() == targets[0].numel() if len(targets) else True:
            return "regression"
        raise ValueError(
            f"float targets of shape {tuple(targets.shape)} do not match outputs of shape "
            f"{tuple(logits.shape)} (regression needs one target per output value); pass "
            "loss_fn= (and metric_fn=) that fit them."
        )
    if logits.dim() == 2 and targets.dim() == 1:
        return "classification"
    if logits.dim() == 3 and targets.dim() == 2 and logits.shape[:2] == targets.shape:
        raise ValueError(
            f"the model outputs a sequence of logits {tuple(logits.shape)} for targets "
            f"{tuple(targets.shape)}; two tasks fit these shapes: {_NAME_IT}."
        )
    raise ValueError(
        f"outputs of shape {tuple(logits.shape)} and targets of shape {tuple(targets.shape)} "
        f"fit no task assd knows ({', '.join(TASKS)}); pass loss_fn= and metric_fn=, or "
        "batch_fn=/output_fn= to reshape them."
    )


def resolve_task(task: str | None, logits: torch.Tensor, targets: torch.Tensor) -> str:
    """``task`` checked against the shapes, or the inferred task when ``task`` is None."""
    if check_task(task) is None:
        return infer_task(logits, targets)
    if task == "regression":
        if logits[0].numel() != targets[0].numel():
            raise ValueError(
                f"task='regression' needs one target per output value; got outputs "
                f"{tuple(logits.shape)} and targets {tuple(targets.shape)}."
            )
        return task
    wanted = (2, 1) if task == "classification" else (3, 2)
    shape = "(batch, classes) logits and (batch,)" if task == "classification" else (
        "(batch, length, classes) logits and (batch, length)")  # fmt: skip
    fits = (logits.dim(), targets.dim()) == wanted and logits.shape[: wanted[1]] == targets.shape
    if not fits or targets.is_floating_point():
        raise ValueError(
            f"task={task!r} needs {shape} integer targets; got outputs {tuple(logits.shape)} "
            f"and targets {tuple(targets.shape)} ({targets.dtype}). Check the task, or pass "
            "batch_fn=/output_fn= to reshape them."
        )
    return task


@dataclass
class RowFigures:
    """Per row: summed loss and counted positions; for class tasks the counts of right
    predictions and whether every counted position was right (None for regression)."""

    loss: torch.Tensor  # (B,) summed over the row's counted positions
    counted: torch.Tensor  # (B,) positions (1 per row for classification and regression)
    correct: torch.Tensor | None  # (B,)
    exact: torch.Tensor | None  # (B,) bool
    pred: torch.Tensor | None = None  # classification: the arg-max class per row


def _aligned(task: str, logits: torch.Tensor, targets: torch.Tensor):
    """Logits ``(N, C)`` and targets ``(N,)`` of the counted positions' grid, and ``(B, L)``."""
    if task == "causal-lm":
        logits, targets = logits[:, :-1], targets[:, 1:]
    return logits, targets


def row_figures(task: str, logits: torch.Tensor, targets: torch.Tensor) -> RowFigures:
    """Loss and hits per row under ``task`` (the shapes must fit it: :func:`resolve_task`)."""
    logits = logits.float()
    if task == "regression":
        err = (logits.reshape(targets.shape) - targets.float()).pow(2).reshape(len(targets), -1)
        ones = torch.ones(len(targets), device=logits.device)
        return RowFigures(err.mean(1), ones, None, None)
    if task == "classification":
        pred = logits.argmax(-1)
        hit = (pred == targets).float()
        ones = torch.ones(len(targets), device=logits.device)
        return RowFigures(F.cross_entropy(logits, targets, reduction="none"), ones, hit,
                          hit.bool(), pred)  # fmt: skip
    logits, targets = _aligned(task, logits, targets)
    keep = targets != IGNORE_INDEX
    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="none")  # fmt: skip
    losses = flat.reshape(targets.shape).masked_fill(~keep, 0.0)
    hits = (logits.argmax(-1) == targets) & keep
    counted = keep.sum(1).float()
    correct = hits.sum(1).float()
    exact = (correct == counted) & (counted > 0)
    return RowFigures(losses.sum(1), counted, correct, exact)


def _row_mean_loss(task: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The batch mean of each row's mean loss over its counted positions (a row with none
    counts 0), so that a batch's loss is the mean of its rows' own losses."""
    resolve_task(task, logits, targets)
    if task == "regression":
        return row_figures(task, logits, targets).loss.mean()
    logits, targets = _aligned(task, logits, targets)  # the loss only: no arg-max here
    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="none")  # fmt: skip
    counted = (targets != IGNORE_INDEX).sum(1).clamp(min=1)
    return (flat.reshape(targets.shape).sum(1) / counted).mean()


def token_classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of each row's mean cross-entropy over its labelled (not -100) tokens."""
    return _row_mean_loss("token-classification", logits, targets)


def causal_lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of each row's mean next-token cross-entropy (targets = input ids;
    -100 positions ignored)."""
    return _row_mean_loss("causal-lm", logits, targets)


def regression_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error, outputs reshaped to the targets' shape."""
    return _row_mean_loss("regression", logits, targets)


_LOSSES = {
    "token-classification": token_classification_loss,
    "causal-lm": causal_lm_loss,
    "regression": regression_loss,
}


def default_loss(task: str | None):
    """The batch loss a task fixes (None: the default cross-entropy, for classification or
    when no task is named, which the importance pass then checks against the shapes)."""
    return _LOSSES.get(check_task(task))
