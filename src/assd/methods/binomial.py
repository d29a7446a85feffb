"""A one-sided binomial limit: how many rows may keep a property by chance alone."""

from __future__ import annotations

import math

__all__ = ["binomial_upper"]


def binomial_upper(n: int, p: float, level: float = 0.05) -> int:
    """The largest count ``k`` with ``P(X >= k) >= level`` for ``X ~ Binomial(n, p)``: how
    many of ``n`` rows may keep a property of rate ``p`` before chance alone (one-sided,
    ``level``) stops explaining it.

    Example:
        >>> binomial_upper(100, 0.5)  # P(X >= 58) = 0.067, P(X >= 59) = 0.044
        58
    """
    if p <= 0 or p >= 1:
        return 0 if p <= 0 else n
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(n + 1)]
    tail = 0.0
    for k in range(n, -1, -1):
        tail += math.exp(logs[k])
        if tail >= level:
            return k
    return 0
