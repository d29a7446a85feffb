"""Tries of SSD dampening at several strengths on the same importances, and the search over them.

One *strength* ``t`` sets both SSD hyperparameters from the first try's
``(alpha0, lam0)``: ``alpha = alpha0 * exp(-t)`` and, once ``t > 0``,
``lambda = min(lam0, alpha)``. ``t = 0`` is the request as asked; larger
``t`` dampens more (first a lower threshold; below ``alpha = lam0``, where a
lower threshold alone stops changing anything because ``min(lam * I_D / I_Df, 1)``
is 1 for every newly selected element, threshold and lambda fall together);
``t = -inf`` changes nothing. Every try restores the weights from one
snapshot (an in-place copy, no new model), dampens, and scores the
evaluation sets: the post-stage plus forward passes over small sets.

:func:`search` finds the boundary of a monotone "stop" predicate (target met
or guard broken) by bracketing in steps of x4 in alpha and bisecting down to
``RESOLUTION`` (alpha within a factor 1.105).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..rule.dampening import dampen_parameters_
from ..verify.guard import RetainGuard
from ..verify.outcome import score_sets, snapshot

__all__ = ["RESOLUTION", "STEP", "Trials", "search"]

STEP = math.log(4.0)
RESOLUTION = 0.1
WEAKEST = -10 * STEP  # alpha x 4**10: beyond any finite ratio in practice
STRONGEST = 12 * STEP


class Trials:
    """Dampen ``model`` (a working copy) at chosen strengths and score each try.

    Args:
        model: the model to dampen in place (not the user's: a copy).
        forget, reference: the two importances (``{name: tensor}``).
        alpha0, lam0: the strength-0 hyperparameters.
        sets: evaluation sets ``{name: batches}`` (``forget`` and retained/held-out).
        guard: a :class:`RetainGuard`, or None.
        target: ``target(before, after) -> dict`` with a boolean ``"met"``, or None.
    """

    def __init__(self, model, forget, reference, *, alpha0: float, lam0: float, sets: dict,
                 guard: RetainGuard | None, target: Callable | None = None,
                 loss_fn=None, batch_fn=None, output_fn=None, task=None,
                 metric_fn=None):  # fmt: skip
        self.model, self.forget, self.reference = model, forget, reference
        self.alpha0, self.lam0, self.sets = alpha0, lam0, sets
        self.guard, self.target = guard, target
        self.score_options = {"loss_fn": loss_fn, "batch_fn": batch_fn, "output_fn": output_fn,
                              "task": task, "metric_fn": metric_fn}  # fmt: skip
        self.params = {n: p for n, p in model.named_parameters() if n in reference}
        self.original = snapshot(self.params)
        self.before = score_sets(model, sets, **self.score_options)
        self.tries: list[dict] = []
        self.current: float | None = None
        self.seen: dict[float, dict] = {}  # strength -> its try (dampening is deterministic)
        self.keep_rows: tuple = ()  # sets whose per-row outputs the target reads (``rows``)
        self.rows: dict | None = None  # those outputs, while the target judges a try

    def hyperparameters(self, t: float) -> tuple[float, float]:
        alpha = self.alpha0 * math.exp(-t) if math.isfinite(t) else math.inf
        return alpha, (min(self.lam0, alpha) if t > 0 else self.lam0)

    def apply(self, t: float, *, record: bool = True) -> dict:
        """Restore the weights, dampen at strength ``t``, score; returns the try's record.

        A strength tried before is not dampened and scored again: its record is returned
        as it is (the weights stay as they are). With ``record=False`` (put the model at
        ``t``) the weights are always set, and scored only if ``t`` was never tried."""
        seen = self.seen.get(_key(t))
        if seen is not None and record:
            return seen
        self.restore()
        alpha, lam = self.hyperparameters(t)
        counts = dampen_parameters_(self.params, self.forget, self.reference,
                                    alpha=alpha, dampening=lam)  # fmt: skip
        self.current, self.counts = t, counts
        if seen is not None:
            return seen
        entry = {"strength": round(t, 4) if math.isfinite(t) else None, "alpha": alpha,
                 "dampening": lam, "selected": sum(s for s, _ in counts.values())}  # fmt: skip
        entry = self.measure(entry, record=record)
        self.seen[_key(t)] = entry
        return entry

    def measure(self, entry: dict, *, record: bool = True) -> dict:
        """Score the weights as they are now and add the scores, guard and target to ``entry``."""
        rows: dict = {}
        after = score_sets(self.model, self.sets, **self.score_options, rows=rows,
                           keep=self.keep_rows)  # fmt: skip
        entry["after"] = {k: v.to_dict() for k, v in after.items()}
        entry["guard"] = self.guard.check(self.before, after) if self.guard else None
        self.rows = rows  # valid for this judgement only: the weights move on after it
        try:
            entry["target"] = self.target(self.before, after) if self.target else None
        finally:
            self.rows = None
        entry["scores"] = after
        if record:
            self.tries.append(entry)
        return entry

    def restore(self) -> None:
        for name, p in self.params.items():
            p.data.copy_(self.original[name])

    def path(self) -> list[dict]:
        """The tries without the score objects (JSON-ready)."""
        return [{k: v for k, v in t.items() if k != "scores"} for t in self.tries]


def guard_ok(entry: dict) -> bool:
    return entry["guard"] is None or entry["guard"]["ok"]


def target_met(entry: dict) -> bool:
    return entry["target"] is not None and entry["target"]["met"]


def search(trials: Trials, *, first: dict | None = None, use_guard: bool = True) -> dict:
    """The weakest try that meets the target within the guard, else the strongest within it.

    "Stop" = target met or guard broken; both are taken as monotone in the strength.
    Brackets the stop boundary from strength 0 (``first``, if already tried), then
    bisects; leaves ``trials.model`` dampened at the chosen strength. With
    ``use_guard=False``: the weakest try that meets the target, whatever the guard says.
    """
    ok = guard_ok if use_guard else (lambda e: True)

    def stop(entry: dict) -> bool:
        return target_met(entry) or not ok(entry)

    first = first or trials.apply(0.0)
    lo, hi = _bracket(trials, first, stop)
    while hi is not None and math.isfinite(lo[0]) and hi[0] - lo[0] > RESOLUTION:
        mid = trials.apply((lo[0] + hi[0]) / 2)
        if stop(mid):
            hi = (mid["strength"], mid)
        else:
            lo = (mid["strength"], mid)
    chosen = hi[1] if hi is not None and target_met(hi[1]) and ok(hi[1]) else lo[1]
    if chosen is None:  # nothing weaker respects the guard: change nothing
        chosen = trials.apply(-math.inf)
    elif trials.current != _t(chosen):
        trials.apply(_t(chosen), record=False)
    return chosen


def _key(t: float) -> float:
    return round(t, 9) if math.isfinite(t) else t


def _t(entry: dict) -> float:
    return -math.inf if entry["strength"] is None else entry["strength"]


def _bracket(trials: Trials, first: dict, stop):
    """``(lo, hi)`` as ``(strength, entry)``: ``lo`` does not stop, ``hi`` stops (or None)."""
    if stop(first):
        hi, t = (0.0, first), -STEP
        while t >= WEAKEST:
            entry = trials.apply(t)
            if not stop(entry):
                return (t, entry), hi
            hi, t = (t, entry), t - STEP
        return (-math.inf, None), hi
    lo, t = (0.0, first), STEP
    while t <= STRONGEST:
        entry = trials.apply(t)
        if stop(entry):
            return lo, (t, entry)
        lo, t = (t, entry), t + STEP
    return lo, None
