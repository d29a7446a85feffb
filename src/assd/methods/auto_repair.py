"""``assd-auto``'s path when its forget target lies beyond the retain guard: dampen, then
repair.

:func:`dampen_and_repair` dampens at the weakest strength that meets the target (the guard
ignored) and runs a bounded repair (:mod:`assd.methods.repair`) on the retained rows that
holds the forget rows' outputs where the dampening put them. After every epoch the guard is
checked: the repair stops once it holds; when its pace over the last epochs could not make
it hold by the bound (:func:`assd.methods.repair.out_of_pace`), the step size is cut once
and the pace measured afresh, and a second stall stops it. If the guard still breaks, the
strongest dampening within the guard is kept instead (the verdict then says the target was
missed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from ..verify.tolerance import repaired_verdict
from .repair import out_of_pace, repair_
from .rule_targets import _figure
from .search import Trials, search

__all__ = [
    "KEYS",
    "dampen_and_repair",
    "guard_stop",
    "kept_or_fallback",
    "repair_to_goal",
    "strength_of",
]

log = logging.getLogger("assd")


def dampen_and_repair(trials: Trials, fallback: dict, retain, *, epochs: int,
                      options: dict) -> dict:  # fmt: skip
    """The weakest dampening that meets the target (guard ignored), then a bounded repair
    on the retained rows (``retain``, else the evaluation's) that keeps the forget rows'
    outputs; ``fallback`` (the strongest dampening within the guard) if the guard still
    breaks after the repair. The target is judged on the dampened model: the repair may
    bring back what the retained rows alone teach about the forget rows (as retraining
    would), and the result reports it. ``options``: the method's ``batch_fn``,
    ``output_fn`` and ``loss_fn``."""
    reach = search(trials, first=trials.tries[0], use_guard=False)
    if not reach["target"]["met"]:
        trials.apply(strength_of(fallback), record=False)
        return fallback

    ran = repair_(trials.model, retain=retain if retain is not None else trials.sets["retain"],
                  forget=trials.sets["forget"], done=guard_stop(trials, epochs), epochs=epochs,
                  **{k: options[k] for k in ("batch_fn", "output_fn", "loss_fn")})  # fmt: skip
    entry = trials.measure({**{k: reach[k] for k in KEYS}, "repair_epochs": ran})
    after = entry["target"]
    entry["target"] = {**reach["target"], "after_repair": after, "repair_epochs": ran,
                       "verdict": f"{reach['target']['verdict']} That was the dampened "
                                  f"model; after {ran} repair epoch(s), "
                                  f"{_figure(after)}: {repaired_verdict(after)}."}  # fmt: skip
    return kept_or_fallback(trials, entry, fallback)


KEYS = ("strength", "alpha", "dampening", "selected")  # a try's dampening, kept after a repair


def kept_or_fallback(trials: Trials, entry: dict, fallback: dict) -> dict:
    """The repaired try ``entry`` if the guard holds on it, else ``fallback`` (the strongest
    dampening within the guard), put back on the model."""
    if entry["guard"]["ok"]:
        return entry
    log.info("assd-auto: %d repair epochs did not restore the retained rows; keeping "
             "the strongest dampening within the guard", entry["repair_epochs"])  # fmt: skip
    trials.apply(strength_of(fallback), record=False)
    return fallback


def repair_to_goal(trials: Trials, start: dict, retain, *, goal: float, epochs: int,
                   options: dict, how: Callable[[int], str], ceiling: float | None = None,
                   restore: bool = True, epochs_before: int = 0, **record) -> dict:  # fmt: skip
    """Put ``start``'s dampening back, repair it on the retained rows (``retain``, else the
    evaluation's) pushing the forget rows' loss up to ``goal`` until the target and the guard
    both hold, and measure the result: the measured try, its target carrying the goal, the
    epochs run and ``how(epochs)`` after its verdict (``record``: more fields for the try).
    ``ceiling``: also pull the forget rows' loss back down once above it. ``restore=False``:
    go on from the weights as they are (a repair after ``epochs_before`` epochs of another)."""
    if restore:
        trials.apply(strength_of(start), record=False)
    ran = repair_(trials.model, retain=retain if retain is not None else trials.sets["retain"],
                  forget=trials.sets["forget"], epochs=epochs, forget_goal=goal,
                  forget_ceiling=ceiling, done=guard_stop(trials, epochs, target_too=True),
                  **{k: options[k] for k in ("batch_fn", "output_fn", "loss_fn")})  # fmt: skip
    total = epochs_before + ran
    entry = trials.measure({**{k: start[k] for k in KEYS}, "repair_epochs": total, **record})
    after = entry["target"]
    entry["target"] = {**after, "repair_goal": round(goal, 6), "repair_epochs": total,
                       "verdict": f"{after['verdict']} {how(ran)}"}
    if ceiling is not None:
        entry["target"]["repair_ceiling"] = round(ceiling, 6)
    return entry


def guard_stop(trials: Trials, epochs: int, *, target_too: bool = False):
    """The repair's ``done()``: True once the guard holds (and, with ``target_too``, the
    target is met); ``"plateau"`` when the guard's pace over the last epochs could not make
    it hold by ``epochs`` (:func:`out_of_pace`, measured afresh after each plateau)."""
    gaps: list[float] = []  # worst retained drop beyond what the guard allows, per epoch
    since = 0  # the epoch the current step size began

    def stop() -> bool | str:
        nonlocal since
        scores = _scores(trials)
        check = trials.guard.check(trials.before, scores)
        gaps.append(check["worst"]["drop"] - check["worst"]["allowed"])
        if check["ok"]:
            return not target_too or bool(trials.target(trials.before, scores)["met"])
        if not out_of_pace(gaps[since:], epochs - since):
            return False
        since = len(gaps) - 1  # the pace is measured afresh at the new step size
        return "plateau"

    return stop


def strength_of(entry: dict) -> float:
    """A try's strength on the search's axis (-inf: no dampening)."""
    return -math.inf if entry["strength"] is None else entry["strength"]


def _scores(trials: Trials) -> dict:
    from ..verify.outcome import score_sets

    return score_sets(trials.model, trials.sets, **trials.score_options)
