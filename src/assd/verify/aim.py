"""Where the search aims: the forget accuracy most likely to sit within the margin of a
model that never saw the rows.

A retraining comparison asks whether the result's forget accuracy is within a
margin of a retrained model's. The retrained model's accuracy is itself a draw:
each forget row gets its label with the rate the references give it (a
Poisson-binomial count of hits), widened by how far the references' own
accuracies stray when that is more than the rows' chance. For each count ``k``
of forget rows a result could get right, :func:`met_chance` is the probability
that such a draw lands within ``margin`` of ``k / n``; :func:`aim` is the ``k``
where that probability is highest, or the highest ``k`` (the weakest
dampening) whose probability falls short of it by no more than a slack (the
evidence uses its tests' false-positive rate: a smaller gain in the chance of
meeting retraining is not worth a stronger dampening).

Example:
    >>> import torch
    >>> pmf = poisson_binomial(torch.tensor([0.5, 0.5]))  # 0, 1 or 2 hits
    >>> [round(float(p), 2) for p in pmf]
    [0.25, 0.5, 0.25]
    >>> [round(float(c), 2) for c in met_chance(pmf, margin=0.0)]  # exactly the draw's count
    [0.25, 0.5, 0.25]
    >>> aim(torch.tensor([0.5, 0.5]), margin=0.0)
    0.5
"""

from __future__ import annotations

import math

import torch

__all__ = ["aim", "met_chance", "never_seen_counts", "poisson_binomial"]

EXACT_ROWS = 4000  # above this many rows the count is taken as normal (its exact pmf costs n^2)


def poisson_binomial(rates: torch.Tensor) -> torch.Tensor:
    """The pmf of the number of successes of independent trials with success ``rates``
    (``n + 1`` values, float64): the exact convolution, one trial at a time."""
    pmf = torch.ones(1, dtype=torch.float64)
    for p in rates.double().clamp(0.0, 1.0).tolist():
        pmf = torch.cat([pmf * (1 - p), torch.zeros(1, dtype=torch.float64)]) + torch.cat(
            [torch.zeros(1, dtype=torch.float64), pmf * p])  # fmt: skip
    return pmf


def _normal_counts(n: int, mean: float, sd: float) -> torch.Tensor:
    """A normal of ``mean`` and ``sd`` (in counts) put on the counts 0..n (each count gets its
    unit interval; the tails go to 0 and n)."""
    if sd <= 0:
        pmf = torch.zeros(n + 1, dtype=torch.float64)
        pmf[min(max(round(mean), 0), n)] = 1.0
        return pmf
    edges = (torch.arange(n + 2, dtype=torch.float64) - 0.5 - mean) / sd
    cdf = 0.5 * (1 + torch.erf(edges / math.sqrt(2)))
    cdf[0], cdf[-1] = 0.0, 1.0
    return cdf[1:] - cdf[:-1]


def never_seen_counts(rates: torch.Tensor, extra_sd: float = 0.0) -> torch.Tensor:
    """The pmf of how many of the rows a model that never saw them gets right: the rows'
    Poisson-binomial (normal above :data:`EXACT_ROWS` rows), convolved with a normal of
    ``extra_sd`` (a share of the rows: the references' spread beyond the rows' chance)."""
    n = len(rates)
    if n > EXACT_ROWS:
        p = rates.double()
        var = float((p * (1 - p)).sum()) + (extra_sd * n) ** 2
        return _normal_counts(n, float(p.sum()), math.sqrt(var))
    pmf = poisson_binomial(rates)
    sd = extra_sd * n
    if sd < 0.25:  # less than a quarter row: nothing to widen
        return pmf
    offsets = torch.arange(-n, n + 1, dtype=torch.float64)
    kernel = _normal_counts(2 * n, float(n), sd)  # centred on offset 0
    wide = torch.zeros(n + 1, dtype=torch.float64)
    for j in range(n + 1):  # small n only: a direct convolution, clipped to 0..n
        idx = (j + offsets).clamp(0, n).long()
        wide.index_add_(0, idx, pmf[j] * kernel)
    return wide


def met_chance(pmf: torch.Tensor, margin: float) -> torch.Tensor:
    """For every count ``k`` of hits (0..n): the probability that a draw from ``pmf`` lies
    within ``margin`` (a share of the ``n`` rows) of ``k``."""
    n = len(pmf) - 1
    reach = math.floor(margin * n + 1e-9)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), pmf.cumsum(0)])
    k = torch.arange(n + 1)
    return cdf[(k + reach + 1).clamp(max=n + 1)] - cdf[(k - reach).clamp(min=0)]


def aim(rates: torch.Tensor, margin: float, extra_sd: float = 0.0, slack: float = 0.0) -> float:
    """The forget accuracy (a share ``k / n``) most likely within ``margin`` of a model that
    never saw the rows (:func:`met_chance` of :func:`never_seen_counts`): the highest ``k``
    (the weakest dampening) whose chance is within ``slack`` of the best one's."""
    n = len(rates)
    if n == 0:
        raise ValueError("aim needs at least one forget row.")
    chance = met_chance(never_seen_counts(rates, extra_sd), margin)
    best = float(chance.max())
    k = int(torch.nonzero(chance >= best - slack - 1e-9).max())
    return k / n
