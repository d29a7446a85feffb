"""What the retain guard of a table request watches, by the request's reason.

- ``reason="errors"`` (default: the rows are declared *wrong*, data-entry
  errors): rows likely to carry the same error are not counted as damage.
  Those are the held-out rows whose ids the forget file names too (e.g. found
  by ``assd find-errors``), and every retained or held-out row of a *wrong
  group*: a side of a binary input (a one-hot level such as ``dest=BQN``)
  where the forget rows are most of the training rows, far beyond their
  overall share (:mod:`assd.verify.suspects`). When a batch of rows was typed
  wrongly together, its siblings in the held-out split carry the same wrong
  labels; a model that stops reproducing the error looks worse on them.
- ``reason="privacy"`` (the rows are right and only to be removed): the
  guard watches every retained and held-out row, as it always did.

Example:
    >>> import numpy as np, torch
    >>> from assd.tabular.task import Rows
    >>> x = torch.tensor([[1., 0.]] * 20 + [[0., 1.]] * 20)  # 20 rows in group a, 20 in b
    >>> rows = Rows(x, torch.zeros(40, dtype=torch.long), np.arange(40).astype(str),
    ...             np.zeros(40, dtype=bool))
    >>> forget, retain = rows.subset(np.arange(20)), rows.subset(np.arange(20, 40))
    >>> _, held, info = watched_rows(forget, retain, rows, reason="errors", names=["a", "b"])
    >>> len(held), info["held_out_set_aside"], info["groups"][0]["group"]
    (20, 20, 'a')
"""

from __future__ import annotations

import logging

import numpy as np

from ..verify.suspects import suspect_rows, wrong_groups
from .task import Rows

__all__ = ["DEFAULT_REASON", "REASONS", "check_reason", "watched_rows"]

log = logging.getLogger("assd")

REASONS = ("errors", "privacy")
DEFAULT_REASON = "errors"


def check_reason(reason: str) -> str:
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {REASONS} ('errors': the rows are wrongly "
                         f"labelled; 'privacy': they are right, only to be removed), "
                         f"got {reason!r}.")  # fmt: skip
    return reason


def watched_rows(forget: Rows, retain: Rows, held_out: Rows | None, *, reason: str,
                 declared: np.ndarray | None = None,
                 names: list[str] | None = None,
                 numeric: list[str] | None = None) -> tuple[Rows, Rows | None, dict]:  # fmt: skip
    """The retained and held-out rows the guard watches, and what was set aside.

    Args:
        forget, retain: the training rows to forget and to keep.
        held_out: the labelled held-out rows (or None).
        reason: ``"errors"`` or ``"privacy"`` (see the module docstring).
        declared: held-out rows the forget file names too (boolean mask over ``held_out``).
        names: the input columns' names, for the report.
        numeric: the names of the numeric inputs; with ``names``, every other input is a
            one-hot level (0 or 1 by construction) and is not checked for being binary.

    Returns:
        ``(retain watched, held-out watched, info)``; ``info`` holds the reason, the wrong
        groups and how many rows of each set were set aside.
    """
    check_reason(reason)
    info = {"reason": reason, "groups": [], "retain_set_aside": 0, "held_out_set_aside": 0,
            "held_out_declared": 0}  # fmt: skip
    if reason == "privacy":
        return retain, held_out, info
    groups = wrong_groups(forget.x, retain.x, known=_one_hot(names, numeric, forget.x.shape[1]))
    info["groups"] = [g.to_dict(names) for g in groups]
    keep_retain = ~suspect_rows(retain.x, groups).numpy()
    info["retain_set_aside"] = int((~keep_retain).sum())
    if keep_retain.all():
        watched_retain = retain
    elif keep_retain.any():
        watched_retain = retain.subset(keep_retain)
    else:
        log.warning("every retained row lies in a group the forget rows dominate; the guard "
                    "watches them all")  # fmt: skip
        watched_retain = retain
    if held_out is None or not len(held_out):
        return watched_retain, held_out, info
    aside = suspect_rows(held_out.x, groups).numpy()
    if declared is not None:
        info["held_out_declared"] = int(declared.sum())
        aside |= declared
    info["held_out_set_aside"] = int(aside.sum())
    watched_held = held_out.subset(~aside) if (~aside).any() else None
    if info["held_out_set_aside"]:
        log.info("retain guard (errors): %d held-out and %d retained row(s) likely carry the "
                 "forget rows' error and are not counted as damage", info["held_out_set_aside"],
                 info["retain_set_aside"])  # fmt: skip
    return watched_retain, watched_held, info


def _one_hot(names: list[str] | None, numeric: list[str] | None, width: int):
    """One-hot columns hold only 0 and 1 by construction; the numeric ones are checked (a
    numeric 0/1 flag is a group too). None: check every column."""
    if names is None or numeric is None or len(names) != width:
        return None
    import torch

    numbers = set(numeric)
    return torch.tensor([name not in numbers for name in names], dtype=torch.bool)
