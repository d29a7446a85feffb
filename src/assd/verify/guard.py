"""The retain guard: a limit on how much an unlearning request may cost the data kept.

The guard compares a model's scores on the retained / held-out evaluation sets
(every set but ``forget``) before and after a request. Classification: the
accuracy may fall by at most ``max_drop`` (a share: 0.01 = 1 percentage
point). Regression: the mean loss may rise by at most ``max_drop`` relative
to its value before (0.01 = 1 %). A causal LM: its perplexity, relatively.
With a user's ``metric_fn`` (higher is better): that metric, in points.

Sampling noise: an accuracy drop is a count of rows, and on a small set one
row is more than a point (1 of 80 rows = 1.25 pp). The limit on a set of
``n`` rows is therefore ``max(max_drop, k / n)``, ``k`` the largest count of
rows that a request costing exactly ``max_drop`` of the population loses with
probability at least :data:`NOISE_LEVEL` (one-sided): ``P(X >= k) >= 0.05``
for ``X ~ Binomial(n, max_drop)`` (:func:`noise_limit`). A request whose
losses are *all* real costs rows that way at the least noise (with gains
besides, the net count only spreads more), so the guard breaks only where a
request costing ``max_drop`` would rarely (< 5 %) look as bad. The guard then
caps that allowance at **one row** beyond ``max_drop`` (:meth:`RetainGuard.allowed`):
on 80 rows one row (1.25 pp) is noise and two are not; on 1,000 rows the
limit is 1.10 pp, not the quantile's 1.46 pp. Uncapped, the allowance let the
error benchmark's uniform-error cells lose up to 1.2 pp on single seeds
(flights, 10 % errors; 0.5 pp without it), and what the guard keeps matters more
than a request that a noisy small set held back.

Example:
    >>> from assd.verify.outcome import SetScore
    >>> guard = RetainGuard(max_drop=0.01)
    >>> before = {"retain": SetScore(100, 0.98, 0.1)}
    >>> guard.check(before, {"retain": SetScore(100, 0.975, 0.12)})["ok"]
    True
    >>> guard.check(before, {"retain": SetScore(100, 0.95, 0.2)})["worst"]["drop"]
    0.03
    >>> guard.check(before, {"retain": SetScore(100, 0.95, 0.2)})["worst"]["allowed"]
    0.02
"""

from __future__ import annotations

import math
from functools import lru_cache

from .evidence import binomial_upper
from .outcome import SetScore
from .split import UNSEEN, is_forgotten_part

__all__ = ["DEFAULT_MAX_DROP", "NOISE_LEVEL", "GuardRefused", "RetainGuard", "guard_change",
           "noise_limit"]

DEFAULT_MAX_DROP = 0.01
NOISE_LEVEL = 0.05  # one-sided: how rarely a request costing max_drop may look worse


@lru_cache(maxsize=256)
def noise_limit(n: int, max_drop: float, level: float = NOISE_LEVEL) -> float:
    """The accuracy drop a set of ``n`` rows may show: ``max(max_drop, k / n)``, ``k`` the
    largest count with ``P(X >= k) >= level`` for ``X ~ Binomial(n, max_drop)``.

    Example (by hand: P(X = 0, 1, 2) = 0.4475, 0.3616, 0.1443 on 80 rows at 1 %, so
    P(X >= 2) = 0.1909 and P(X >= 3) = 0.0466 < 0.05: two rows may go):
        >>> noise_limit(80, 0.01)
        0.025
    """
    if n <= 0 or max_drop <= 0 or max_drop >= 1:
        return max_drop
    return max(max_drop, binomial_upper(n, max_drop, level=level) / n)


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
        sets: the evaluation sets it watches; default every set but ``forget``, the
            forgotten parts split off the others and a language model's never-seen reference
            sequences ``"unseen"`` (:mod:`assd.verify.split`; a classifier's set of that
            name is watched).
        noise: allow an accuracy drop within the sampling noise of the set's size
            (:func:`noise_limit`), at most one row beyond ``max_drop``; False:
            ``max_drop`` on any set.
    """

    def __init__(self, max_drop: float = DEFAULT_MAX_DROP, *, sets: tuple[str, ...] | None = None,
                 noise: bool = True):  # fmt: skip
        if not isinstance(max_drop, (int, float)) or math.isnan(max_drop) or max_drop < 0:
            raise ValueError(
                f"the guard's max_drop must be a number >= 0 (0.01 = one accuracy point), "
                f"got {max_drop!r}."
            )
        self.max_drop, self.sets, self.noise = float(max_drop), sets, bool(noise)

    def allowed(self, score: SetScore) -> float:
        """The limit on ``score``'s set: ``max_drop``, widened by the sampling noise of an
        accuracy on few rows (:func:`noise_limit`) by at most one row."""
        if not self.noise or _kind(score) != "accuracy points" or not score.n:
            return self.max_drop
        n = int(score.n)
        return min(noise_limit(n, self.max_drop), self.max_drop + 1 / n)

    def watched(self, scores: dict[str, SetScore]) -> list[str]:
        if self.sets is None:  # every set but what is forgotten and the never-seen reference
            names = [n for n in scores if n != "forget" and not is_forgotten_part(n)
                     and not (n == UNSEEN and scores[n].perplexity is not None)]
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
        """``{"ok", "limit", "worst": {"set", "drop", "kind", "allowed"}, "verdict"}``: the
        worst set is the one furthest beyond its own limit (``allowed``, :meth:`allowed`)."""
        names = self.watched(before)
        drops = {n: self.drop(before[n], after[n]) for n in names}
        allowed = {n: self.allowed(before[n]) for n in names}
        worst = max(names, key=lambda n: (drops[n] - allowed[n], drops[n]))
        kind = _kind(before[worst])
        ok = all(drops[n] <= allowed[n] + 1e-12 for n in names)
        figures = {"set": worst, "drop": round(drops[worst], 6), "kind": kind,
                   "allowed": round(allowed[worst], 6)}  # fmt: skip
        return {"ok": ok, "limit": self.max_drop, "worst": figures,
                "verdict": self._sentence(ok, worst, drops[worst], kind, allowed[worst],
                                          before[worst].n)}  # fmt: skip

    def _sentence(self, ok: bool, name: str, drop: float, kind: str, allowed: float,
                  n: int) -> str:  # fmt: skip
        scale, unit = (100, " pp") if kind in ("accuracy points", "metric points") else (100, " %")
        state = "holds" if ok else "BROKEN"
        noise = ""  # said only where the allowance decided: a drop beyond max_drop
        shown = f"{scale * allowed:.2f}" != f"{scale * self.max_drop:.2f}"  # 1.002 reads 1.00
        if shown and allowed > self.max_drop + 1e-12 and drop > self.max_drop + 1e-12:
            noise = f"; {scale * allowed:.2f}{unit} on its {n} rows for sampling noise"
        return (f"Retain guard {state}: worst drop {scale * drop:.2f}{unit} on {name!r} "
                f"(limit {scale * self.max_drop:.2f}{unit}{noise}).")  # fmt: skip


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
    allowed = 100 * worst.get("allowed", asked["guard"]["limit"])
    shown = f"{allowed:.2f}" != f"{limit:.2f}"  # a widening of 0.002 pp reads as the limit
    noise = f"; {allowed:.2f}{unit} on that set for sampling noise" if shown and allowed > limit \
        else ""
    cost = f"{100 * worst['drop']:.2f}{unit} on {worst['set']!r} (limit {limit:.2f}{unit}{noise})"
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
