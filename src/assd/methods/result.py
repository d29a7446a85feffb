"""What every unlearning method returns."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from torch import nn

from ..verify.outcome import Outcome

log = logging.getLogger("assd")

__all__ = ["UnlearnResult"]


@dataclass
class UnlearnResult:
    """The unlearned model and what was done to it.

    Attributes:
        model: the unlearned model (a copy unless ``inplace=True`` was asked).
        method: registered name of the method.
        seconds: wall time of the whole request.
        timings: seconds per stage (e.g. ``importance_data``, ``importance_forget``,
            ``select_dampen``).
        alpha: the selection threshold used (SSD family), else None.
        percentile: the percentile alpha was taken at (adaptive methods), else None.
        dampening: lambda (SSD family), else None.
        per_layer: ``{parameter name: (elements dampened, elements)}`` (SSD family).
        n_forget: samples in the forget set.
        n_data: samples in the whole training set used for the percentile, if known.
        importance_settings: how the reference importance was computed (estimator,
            objective, loss, reference, train_mode, n_samples, batch_size), SSD family.
        outcome: scores before/after on the evaluation sets, weights that
            actually changed, per-layer norms, guard and search story, and a
            plain-language verdict (:class:`assd.verify.outcome.Outcome`); None when
            the request had no ``evaluate=`` sets.
    """

    model: nn.Module
    method: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    alpha: float | None = None
    percentile: float | None = None
    dampening: float | None = None
    per_layer: dict[str, tuple[int, int]] = field(default_factory=dict)
    n_forget: int | None = None
    n_data: int | None = None
    importance_settings: dict | None = None
    outcome: Outcome | None = None

    @property
    def n_dampened(self) -> int:
        """Elements *selected* for dampening (some keep their value: see ``n_changed``)."""
        return sum(s for s, _ in self.per_layer.values())

    @property
    def n_changed(self) -> int | None:
        """Elements whose value actually changed (None without ``evaluate=``)."""
        return None if self.outcome is None else self.outcome.n_changed

    @property
    def verdict(self) -> str | None:
        """What the request did, in plain words (None without ``evaluate=``)."""
        return None if self.outcome is None else self.outcome.verdict()

    @property
    def n_params(self) -> int:
        return sum(n for _, n in self.per_layer.values())

    @property
    def share_dampened(self) -> float:
        return self.n_dampened / self.n_params if self.n_params else 0.0

    def summary(self) -> dict:
        """A JSON-ready dict of everything but the model."""
        return {
            "method": self.method,
            "seconds": round(self.seconds, 4),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "alpha": self.alpha,
            "percentile": self.percentile,
            "dampening": self.dampening,
            "n_forget": self.n_forget,
            "n_data": self.n_data,
            "importance_settings": self.importance_settings,
            "n_dampened": self.n_dampened,
            "n_params": self.n_params,
            "share_dampened": self.share_dampened,
            "per_layer": {
                k: {"dampened": s, "elements": n} for k, (s, n) in self.per_layer.items()
            },
            "outcome": None if self.outcome is None else self.outcome.summary(),
            "verdict": self.verdict,
        }


def log_result(result: UnlearnResult) -> None:
    """Log what a dampening request did: its alpha and count, and a warning when it
    selected nothing although alpha was finite."""
    log.info("%s: alpha=%.4g, dampened %d of %d weights in %.2fs", result.method, result.alpha,
             result.n_dampened, result.n_params, result.seconds)  # fmt: skip
    if result.n_dampened == 0 and math.isfinite(result.alpha):  # inf: nothing asked
        log.warning(
            "%s selected no weight (alpha=%.4g exceeds every I_Df/I_D): nothing was "
            "forgotten. With I_D on all rows and the per-sample estimator the ratios "
            "cannot exceed |D|/|Df| = %.3g; use reference='retain', a smaller alpha, "
            "or assd-auto.", result.method, result.alpha,
            result.n_data / max(result.n_forget, 1),
        )  # fmt: skip
    if result.outcome is not None:
        log.info("%s: %s", result.method, result.outcome.verdict())
