"""Which rows likely carry the same label error as the forget rows (error-correction requests).

When the forget rows are declared *wrong* (data-entry errors), the rows they
were entered with are rarely the only ones: a batch of rows typed wrongly
together (one shop, one destination, one clerk) has siblings in the held-out
split too, with the same wrong labels. Scored against those labels, a model
that stops reproducing the error looks worse. Such rows must not count as
damage in the retain guard (:mod:`assd.verify.guard`).

The rule works on the encoded inputs alone (no column names, no labels), so
it needs no group column from the user:

- a *group* is the set of rows on one side of a binary input column (a
  one-hot level such as ``dest=BQN``, or a 0/1 flag and its complement);
- a group is *wrong* when the forget rows are most of the training rows in it
  (share > 1/2), there are at least ``MIN_FORGET_ROWS`` of them, and so many
  that the forget rows' overall share cannot explain it: the Chernoff bound
  ``exp(-n KL(q || p))`` on a Binomial(n, p) reaching the group's share ``q``
  is below ``LEVEL`` (``p``: the forget rows' share of all training rows);
- a row is a *suspect* when it belongs to a wrong group.

Rows drawn at random (uniform errors, most privacy requests) form no wrong
group: their share in every group stays near ``p`` < 1/2. Whole groups
declared wrong are found exactly.

Example:
    >>> import torch
    >>> x = torch.tensor([[1., 0.], [1., 0.], [1., 0.], [0., 1.], [0., 1.], [0., 1.]] * 4)
    >>> forget = torch.tensor([True, True, True, False, False, False] * 4)
    >>> groups = wrong_groups(x[forget], x[~forget])
    >>> [(g.column, g.value, g.n_forget, g.n_rows) for g in groups]
    [(0, 1.0, 12, 12), (1, 0.0, 12, 12)]
    >>> suspect_rows(torch.tensor([[1., 0.], [0., 1.]]), groups).tolist()
    [True, False]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["LEVEL", "MIN_FORGET_ROWS", "WrongGroup", "suspect_rows", "wrong_groups"]

MIN_FORGET_ROWS = 5  # fewer forget rows than this never make a group "wrong"
LEVEL = 1e-3  # how improbable the group's forget share must be under the overall share


@dataclass(frozen=True)
class WrongGroup:
    """Rows with ``x[:, column] == value`` (a binary input): most of them were declared wrong."""

    column: int
    value: float
    n_forget: int
    n_rows: int  # training rows in the group, forget rows included

    def to_dict(self, names: list[str] | None = None) -> dict:
        name = names[self.column] if names else f"x{self.column}"
        label = name if self.value == 1 else f"not {name}"
        return {"group": label, "forget_rows": self.n_forget, "training_rows": self.n_rows}


def wrong_groups(
    forget_x: torch.Tensor,
    retain_x: torch.Tensor,
    *,
    min_forget: int = MIN_FORGET_ROWS,
    level: float = LEVEL,
    known: torch.Tensor | None = None,
) -> list[WrongGroup]:
    """The groups (sides of binary input columns) that the forget rows dominate.

    Args:
        forget_x: inputs of the forget rows ``(k, F)``.
        retain_x: inputs of the other training rows ``(n - k, F)``.
        min_forget: fewest forget rows in a wrong group.
        level: the Chernoff bound on the group's forget share must fall below it.
        known: columns known to hold only 0 and 1 (a boolean mask, e.g. one-hot
            columns); the others are checked. Default: every column is checked.
    """
    forget_x, retain_x = _flat(forget_x), _flat(retain_x)
    k, n = len(forget_x), len(forget_x) + len(retain_x)
    if k == 0 or k == n:
        return []
    binary = torch.zeros(forget_x.shape[1], dtype=torch.bool) if known is None else known.clone()
    rest = ~binary
    if rest.any():  # only the columns not known to be binary
        binary[rest] = _binary_columns(forget_x[:, rest]) & _binary_columns(retain_x[:, rest])
    ones_f = forget_x.sum(0, dtype=torch.float64)[binary]
    ones_n = ones_f + retain_x.sum(0, dtype=torch.float64)[binary]
    p = k / n
    out = []
    for col, f1, n1 in zip(binary.nonzero().flatten().tolist(), ones_f.tolist(), ones_n.tolist(),
                           strict=True):  # fmt: skip
        for value, nf, nr in ((1.0, f1, n1), (0.0, k - f1, n - n1)):
            if _is_wrong(int(nf), int(nr), p, min_forget, level):
                out.append(WrongGroup(col, value, int(nf), int(nr)))
    return out


def suspect_rows(x: torch.Tensor, groups: list[WrongGroup]) -> torch.Tensor:
    """A boolean mask: rows of ``x`` that belong to any of ``groups``."""
    x = _flat(x)
    if not groups:
        return torch.zeros(len(x), dtype=torch.bool)
    columns = torch.tensor([g.column for g in groups])
    values = torch.tensor([g.value for g in groups], dtype=x.dtype)
    return (x[:, columns] == values).any(1)  # the group columns gathered once, not one by one


def chernoff_tail(n: int, k: int, p: float) -> float:
    """An upper bound on ``P(X >= k)`` for ``X ~ Binomial(n, p)``, ``k/n > p``:
    ``exp(-n KL(k/n || p))``; 1 when ``k/n <= p``.

    Example:
        >>> round(chernoff_tail(10, 10, 0.5), 6)  # exp(-10 ln 2) = 0.5 ** 10
        0.000977
    """
    q = k / n
    if q <= p:
        return 1.0
    kl = q * math.log(q / p) + (0.0 if q == 1 else (1 - q) * math.log((1 - q) / (1 - p)))
    return math.exp(-n * kl)


def _is_wrong(n_forget: int, n_rows: int, p: float, min_forget: int, level: float) -> bool:
    if n_forget < min_forget or 2 * n_forget <= n_rows:
        return False
    return chernoff_tail(n_rows, n_forget, p) < level


def _binary_columns(x: torch.Tensor) -> torch.Tensor:
    if len(x) == 0:
        return torch.ones(x.shape[1], dtype=torch.bool)
    return (x == 0).sum(0) + (x == 1).sum(0) == len(x)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1)
