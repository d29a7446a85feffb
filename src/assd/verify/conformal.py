"""The per-example test against the judged model's own look-alike rows (conformal).

The offline test of :mod:`assd.verify.per_example` compares a model's calibrated
confidence on a forget row with the references' distribution for that row. Its
spread comes from a few references trained at a reduced budget; a fully trained
model that never saw the rows strays from their mean by more than that spread,
and the test then flags it on more rows than its false-positive rate says
(measured in docs/evidence.md: retraining at 0-14 % against a 5 % rate).

Held-out look-alikes of the forget rows (rows like them that neither the judged
model nor any reference trained on) give the judged model's *own* null: each
row's deviation from the references' mean for that row, ``d = (c - mean) /
scale``, is exchangeable between forget rows and look-alikes when the model
never saw either. A forget row's conformal p-value is ``(1 + #{look-alikes with
d >= its d}) / (m + 1)``; it is flagged at ``p <= fpr``. How many of ``n`` forget
rows are flagged by chance then follows :func:`flagged_pmf` exactly, whatever the
budget of the references.

Example:
    >>> t = conformal_test(torch.tensor([5.0, 0.0]), torch.arange(19.0) / 10, fpr=0.05)
    >>> t.flagged.tolist(), [round(v, 2) for v in t.p_value.tolist()]
    ([True, False], [0.05, 1.0])
"""

from __future__ import annotations

import math

import torch

from .per_example import MembershipTest

__all__ = ["chance_limit", "conformal_test", "flagged_pmf", "usable"]


def usable(m: int, fpr: float) -> bool:
    """Whether ``m`` look-alikes can flag a row at ``fpr`` at all (``1 / (m + 1) <= fpr``)."""
    return (m + 1) * fpr >= 1


def conformal_test(forget: torch.Tensor, look_alikes: torch.Tensor, *,
                   fpr: float = 0.05) -> MembershipTest:  # fmt: skip
    """Flag forget rows whose deviations ``forget`` (n,) exceed the look-alikes' (m,)."""
    ref = look_alikes.double().sort().values
    d = forget.double()
    at_least = len(ref) - torch.searchsorted(ref, d, right=False)  # look-alikes with d' >= d
    p_value = (1 + at_least.double()) / (len(ref) + 1)
    at_most = torch.searchsorted(ref, d, right=True)  # the lower tail, the same way
    low = (1 + at_most.double()) / (len(ref) + 1)
    return MembershipTest(confidence=forget, p_value=p_value, flagged=p_value <= fpr + 1e-12,
                          below=low <= fpr + 1e-12, fpr=fpr)  # fmt: skip


def flagged_pmf(n: int, m: int, fpr: float) -> list[float]:
    """``P(X = x)``, ``x = 0..n``: how many of ``n`` forget rows :func:`conformal_test` flags
    when they and the ``m`` look-alikes are exchangeable (a model that never saw them).

    A row is flagged when at most ``r = floor(fpr (m + 1)) - 1`` look-alikes reach it, i.e.
    above the ``(r + 1)``-th largest look-alike; of ``n + m`` exchangeable values, ``x`` of
    the ``n`` lie above it with probability ``C(x + r, x) C(n - x + m - r - 1, n - x) /
    C(n + m, n)`` (a negative hypergeometric law).
    """
    r = math.floor(fpr * (m + 1) + 1e-9) - 1
    if r < 0:
        return [1.0] + [0.0] * n
    total = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return [math.exp(_log_comb(x + r, x) + _log_comb(n - x + m - r - 1, n - x) - total)
            for x in range(n + 1)]  # fmt: skip


def chance_limit(n: int, m: int, fpr: float, level: float | None = None) -> int:
    """The largest count ``k`` with ``P(X >= k) >= level`` under :func:`flagged_pmf`
    (``level`` defaults to ``fpr``): more flagged rows than that are not chance."""
    level = fpr if level is None else level
    tail = 0.0
    pmf = flagged_pmf(n, m, fpr)
    for k in range(n, -1, -1):
        tail += pmf[k]
        if tail >= level:
            return k
    return 0


def _log_comb(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)
