"""Count bands: how many of ``n`` rows a model reaches by chance, and how a weaker model's
rate maps onto a stronger one's.

- :func:`binomial_upper`: the one-sided upper quantile of a Binomial count;
- :func:`beta_binomial_bounds`: the Jeffreys Beta-binomial quantiles of a new model's count
  when references got ``hits`` of ``trials`` right (never a band of zero width);
- :func:`odds_scale`: a rate moved by an odds ratio (:mod:`assd.verify.strength`).

Example:
    >>> binomial_upper(100, 0.5)  # P(X >= 58) = 0.067, P(X >= 59) = 0.044
    58
    >>> round(odds_scale(0.5, 3.0), 3)  # odds 1 -> 3
    0.75
"""

from __future__ import annotations

import math

__all__ = ["MAX_RATIO", "beta_binomial_bounds", "binomial_upper", "odds_ratio", "odds_scale"]

MAX_RATIO = 20.0  # odds_ratio's bound either way: a few hundred rows cannot show more


def beta_binomial_bounds(n: int, hits: int, trials: int, level: float = 0.05) -> tuple[int, int]:
    """``(low, high)``: the ``level`` and ``1 - level`` quantiles of how many of ``n`` rows a
    new model predicts right, when references got ``hits`` of ``trials`` (row, reference)
    pairs right: Beta-binomial with the Jeffreys posterior ``Beta(hits + 1/2, trials - hits
    + 1/2)`` of the rate. It is the least a few references can say about a new model: two
    references that both miss every row do not show that a third one misses every row."""
    a, b = hits + 0.5, trials - hits + 0.5
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + math.lgamma(k + a) + math.lgamma(n - k + b) - math.lgamma(n + a + b)
            - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)) for k in range(n + 1)]
    cdf, low, high = 0.0, None, n
    for k, value in enumerate(logs):
        cdf += math.exp(value)
        if low is None and cdf >= level:
            low = k
        if cdf >= 1 - level:
            high = k
            break
    return (0 if low is None else low), high


def binomial_upper(n: int, p: float, level: float = 0.05) -> int:
    """The largest count ``k`` with ``P(X >= k) >= level`` for ``X ~ Binomial(n, p)``: how
    many of ``n`` rows may keep a property of rate ``p`` before chance alone (one-sided,
    ``level``) stops explaining it."""
    if p <= 0 or p >= 1:
        return 0 if p <= 0 else n
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(n + 1)]  # fmt: skip
    tail = 0.0
    for k in range(n, -1, -1):
        tail += math.exp(logs[k])
        if tail >= level:
            return k
    return 0


def odds_scale(p: float, ratio: float) -> float:
    """``p`` with its odds ``p / (1 - p)`` multiplied by ``ratio`` (0 and 1 stay put)."""
    if p <= 0.0 or p >= 1.0:
        return min(max(p, 0.0), 1.0)
    return ratio * p / (1.0 - p + ratio * p)


def odds_ratio(strong: float, weak: float, n: int, cap: float = MAX_RATIO) -> float:
    """How many times the odds of a right answer at accuracy ``strong`` are those at ``weak``,
    both measured on the same ``n`` rows (each smoothed by half a row, so 100 % stays finite),
    bounded to ``[1 / cap, cap]``."""
    s, w = ((a * n + 0.5) / (n + 1) for a in (strong, weak))
    return min(max((s / (1 - s)) / (w / (1 - w)), 1 / cap), cap)
