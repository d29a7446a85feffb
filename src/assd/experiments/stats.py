"""Summary statistics and tests for experiment tables (NumPy / SciPy)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["additional_correct", "gap_closed", "mean_sd", "t_test"]


def mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof=1; NaN for one value) and count, NaNs dropped.

    Example:
        >>> mean_sd([1.0, 2.0, 3.0])
        (2.0, 1.0, 3)
    """
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, 0
    sd = float(x.std(ddof=1)) if x.size > 1 else math.nan
    return float(x.mean()), sd, int(x.size)


def t_test(a: Sequence[float], b: Sequence[float], *, paired: bool) -> tuple[float, float]:
    """Two-sided t-test of mean(a) vs mean(b): ``(t, p)``; NaN when undefined.

    ``paired=True`` pairs a[i] with b[i] (same seed, same data): SciPy's
    ``ttest_rel``; otherwise Welch's ``ttest_ind(equal_var=False)``.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired and a.shape != b.shape:
        raise ValueError(f"a paired t-test needs equal lengths, got {a.size} and {b.size}.")
    if min(a.size, b.size) < 2:
        return math.nan, math.nan
    result = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def additional_correct(accuracy: float, baseline: float, n_test: int) -> float:
    """The ASSD paper's "additional correct classifications": n_test * (acc - base) / base.

    Example:
        >>> round(additional_correct(0.55, 0.5, 1000), 6)
        100.0
    """
    return n_test * (accuracy - baseline) / baseline


def gap_closed(accuracy: float, baseline: float, target: float) -> float:
    """Share of the baseline-to-target gap closed: (acc - base) / (target - base).

    1 means as good as the target (retraining), 0 no better than the baseline;
    NaN when the target is no better than the baseline (no gap to close).

    Example:
        >>> gap_closed(0.6, 0.5, 0.7)
        0.5
    """
    gap = target - baseline
    return (accuracy - baseline) / gap if gap > 0 else math.nan
