"""The retain guard: a limit on how much an unlearning request may cost the data kept.

The guard compares a model's scores on the retained / held-out evaluation sets
(every set but ``forget``) before and after a request. Classification: the
accuracy may fall by at most ``max_drop`` (a share: 0.01 = 1 percentage
point). Regression: the mean loss may rise by at most ``max_drop`` relative
to its value before (0.01 = 1 %). A causal LM: its perplexity, relatively.
With a user's ``metric_fn`` (higher is better): that metric, in points.

Example:
    >>> from assd.verify.outcome import SetScore
    >>> guard = RetainGuard(max_drop=0.01)
    >>> before = {"retain": SetScore(100, 0.98, 0.1)}
    >>> guard.check(before, {"retain": SetScore(100, 0.975, 0.12)})["ok"]
    True
    >>> guard.check(before, {"retain": SetScore(100, 0.95, 0.2)})["worst"]["drop"]
    0.03
"""

from __future__ import annotations

import math

from .outcome import SetScore
from .split import is_forgotten_part

__all__ = ["DEFAULT_MAX_DROP", "GuardRefused", "RetainGuard", "guard_change"]

DEFAULT_MAX_DROP = 0.01


class GuardRefused(ValueError):
    """The request would break the retain guard; nothing was changed.

    Attributes:
        figures: the guard's verdict (a dict: limit, worst set, drop, scores).
    """

    def __init__(self, message: str, figures: dict):
        super().__init__(message)
        self.figures = figures


class RetainGuard:
    """A limit on the retain / held-out drop.

    Args:
        max_drop: accuracy points (as a share) for classification, or the
            relative increase of the mean loss for regression; >= 0.
        sets: the evaluation sets it watches; default every set but ``forget`` and the
            forgotten parts split off the others (:mod:`assd.verify.split`).
    """

    def __init__(self, max_drop: float = DEFAULT_MAX_DROP, *, sets: tuple[str, ...] | None = None):
        if not isinstance(max_drop, (int, float)) or math.isnan(max_drop) or max_drop < 0:
            raise ValueError(
                f"the guard's max_drop must be a number >= 0 (0.01 = one accuracy point), "
                f"got {max_drop!r}."
            )
        self.max_drop, self.sets = float(max_drop), sets

    def watched(self, scores: dict[str, SetScore]) -> list[str]:
        if self.sets is None:  # every set but what is forgotten (assd.verify.split)
            names = [n for n in scores if n != "forget" and not is_forgotten_part(n)]
        else:
            names = list(self.sets)
        missing = [n for n in names if n not in scores]
        if missing or not names:
            raise ValueError(
                f"the retain guard needs labelled retained or held-out rows to watch "
                f"(evaluate={{'retain': ..., 'test': ...}}); missing: {missing or ['retain']}."
            )
        return names

    def drop(self, before: SetScore, after: SetScore) -> float:
        """How much worse ``after`` is: a user metric's or accuracy points lost, or the
        relative increase of a causal LM's perplexity or of the loss."""
        if before.metric is not None:
            return before.metric - after.metric
        if before.perplexity is not None:
            return after.perplexity / before.perplexity - 1 if before.perplexity else math.inf
        if before.accuracy is not None:
            return before.accuracy - after.accuracy
        if before.loss == 0:
            return 0.0 if after.loss == 0 else math.inf
        return (after.loss - before.loss) / before.loss

    def check(self, before: dict[str, SetScore], after: dict[str, SetScore]) -> dict:
        """``{"ok", "limit", "worst": {"set", "drop", "kind"}, "verdict"}``."""
        drops = {n: self.drop(before[n], after[n]) for n in self.watched(before)}
        worst = max(drops, key=drops.get)
        kind = _kind(before[worst])
        ok = drops[worst] <= self.max_drop + 1e-12
        figures = {"set": worst, "drop": round(drops[worst], 6), "kind": kind}
        return {"ok": ok, "limit": self.max_drop, "worst": figures,
                "verdict": self._sentence(ok, worst, drops[worst], kind)}  # fmt: skip

    def _sentence(self, ok: bool, name: str, drop: float, kind: str) -> str:
        scale, unit = (100, " pp") if kind in ("accuracy points", "metric points") else (100, " %")
        state = "holds" if ok else "BROKEN"
        return (f"Retain guard {state}: worst drop {scale * drop:.2f}{unit} on {name!r} "
                f"(limit {scale * self.max_drop:.2f}{unit}).")  # fmt: skip


def _kind(score: SetScore) -> str:
    if score.metric is not None:
        return "metric points"
    if score.perplexity is not None:
        return "relative perplexity"
    return "accuracy points" if score.accuracy is not None else "relative loss"


def guard_change(
    asked: dict,
    chosen: dict,
    *,
    what: str = "this request",
    asked_as: str = "as asked",
    verbs: tuple[str, str] = ("stopped", "weakened"),
) -> dict:
    """The record and headline of a request the guard changed.

    ``asked``: the try the guard refused (a :class:`assd.methods.search.Trials` entry with
    ``alpha`` and a broken ``guard``); ``chosen``: the try kept instead (``alpha`` inf, or
    ``selected`` 0: nothing changed).

    Example:
        >>> broke = {"alpha": 2.0, "guard": {"limit": 0.01, "worst": {"set": "test",
        ...          "drop": 0.032, "kind": "accuracy points"}}}
        >>> kept = {"alpha": float("inf"), "selected": 0, "guard": {"limit": 0.01,
        ...         "worst": {"set": "test", "drop": 0.0, "kind": "accuracy points"}}}
        >>> guard_change(broke, kept)["headline"]  # doctest: +NORMALIZE_WHITESPACE
        "The retain guard stopped this request: as asked (alpha 2) it would cost 3.20 pp on
        'test' (limit 1.00 pp); no weaker dampening stayed within it, so no weight changed."
    """
    unit = " pp" if asked["guard"]["worst"]["kind"] == "accuracy points" else " %"
    worst, limit = asked["guard"]["worst"], 100 * asked["guard"]["limit"]
    cost = f"{100 * worst['drop']:.2f}{unit} on {worst['set']!r} (limit {limit:.2f}{unit})"
    nothing = not math.isfinite(chosen["alpha"]) or chosen.get("selected") == 0
    verb = verbs[0] if nothing else verbs[1]
    start = f"The retain guard {verb} {what}: {asked_as} (alpha {asked['alpha']:.4g})"
    if nothing:
        headline = (f"{start} it would cost {cost}; no weaker dampening stayed within it, so "
                    "no weight changed.")  # fmt: skip
    else:
        kept = chosen["guard"]["worst"]
        headline = (f"{start} it would cost {cost}; it kept alpha {chosen['alpha']:.4g} instead "
                    f"(cost {100 * kept['drop']:.2f}{unit} on {kept['set']!r}).")  # fmt: skip
    return {"asked_alpha": asked["alpha"], "asked_drop": worst["drop"], "asked_set": worst["set"],
            "kept_alpha": None if nothing else chosen["alpha"], "changed_nothing": nothing,
            "headline": headline}  # fmt: skip
