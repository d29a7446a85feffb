"""When a forget result counts as met: close to what models that never saw the rows do.

The references (:mod:`assd.verify.evidence`) estimate a never-seen model's forget
accuracy and the band of chance around it. "Met" asks the practical question a
retraining comparison asks: is the result's forget accuracy within a stated
**margin** of that estimate? The margin, in accuracy points (the criteria
docs/benchmarks.md judges retraining by):

- a whole class (no retained row carries the forget rows' labels) and random rows:
  ``MARGIN`` (5 points);
- a group inside a class (a sub-class: its label stays in the retained rows):
  ``GROUP_MARGIN`` (15 points): two models that never saw a sub-class differ on it
  by that much from seed to seed.

A result within the margin is **met**. One outside it but within the rows' chance
band (:attr:`assd.verify.evidence.Evidence.chance_band`, which for a few rows is wider
than the margin: 13 rows, one row is 7.7 points) is **undetermined**: a model that never
saw the rows could land there, but so could one that kept them, and the verdict does not
claim "met". The references' disagreement with one another widens neither window: two
references that disagree would otherwise make a window of everything.

Where there are held-out look-alikes of the forget rows (a forgotten class's test rows),
their accuracy must be within its own window too (the margin, or their chance band):
forgetting only the rows trained on, not what they stand for, is not what retraining
does. :func:`references_agree` is reported beside the verdict (for a group, whose
references all judge the same rows): when they disagree, their mean is a rough target,
and the verdict says so.

Example:
    >>> window(0.10, (0.02, 0.30), 0.15)  # the band is wider above, the margin below
    (0.0, 0.3)
    >>> references_agree([0.10, 0.12], 0.05)
    True
"""

from __future__ import annotations

import statistics

__all__ = [
    "GROUP_MARGIN",
    "MARGIN",
    "default_margin",
    "describe",
    "final_verdict",
    "references_agree",
    "repaired_verdict",
    "window",
]

MARGIN = 0.05
GROUP_MARGIN = 0.15
Z = 1.6448536269514722  # one-sided 5 %


def default_margin(kind: str, label_kept: bool) -> float:
    """The margin of a request: ``GROUP_MARGIN`` for a group whose labels the retained rows
    keep (a sub-class), else ``MARGIN``."""
    return GROUP_MARGIN if kind == "group" and label_kept else MARGIN


def window(expected: float, band: tuple[float, float], margin: float) -> tuple[float, float]:
    """The forget accuracies that count as met: ``expected`` plus or minus ``margin``, widened
    to ``band`` where chance alone spreads wider, within [0, 1]."""
    low, high = min(band[0], expected - margin), max(band[1], expected + margin)
    return round(max(low, 0.0), 6), round(min(high, 1.0), 6)


def references_agree(accuracies, margin: float) -> bool:
    """Whether the references' own forget accuracies spread less than ``margin`` (``Z``
    standard deviations): else their mean places a never-seen model only roughly."""
    values = [float(a) for a in accuracies if a == a]  # NaN: a reference with no row
    return len(values) < 2 or Z * statistics.stdev(values) <= margin + 1e-12


def repaired_verdict(after: dict) -> str:
    """What a judge dict says of a repaired model, for the request's verdict text."""
    if "forgotten" not in after:  # a rule target
        return "still meets the target" if after["met"] else "no longer meets the target"
    head = ("forgotten" if after["forgotten"] else "target met, NOT forgotten"
            if after["close"] else "undetermined, NOT claimed met" if after.get("undetermined")
            else "target missed, NOT forgotten")  # fmt: skip
    return f"per-example members {100 * after['member_share']:.1f} %: {head}"


def final_verdict(target: dict) -> dict:
    """The verdict on the model returned (the repaired one when a repair ran; its figures
    are then the target's own): ``met`` is ``close`` (the module docstring: what retraining
    is judged on); ``forgotten`` needs the per-example test too."""
    after = target.get("after_repair")
    if after is None:
        return {**target, "met": target["close"]}
    after = {**after, "met": after["close"]}
    keys = ("met", "in_band", "close", "undetermined", "forgotten", "overshoot",
            "forget_accuracy", "member_share", "below_share", "look_accuracy", "look_window")
    return {**target, "after_repair": after, "dampened": {k: target[k] for k in
            ("forget_accuracy", "member_share", "in_band", "close", "forgotten")},
            **{k: after[k] for k in keys if k in after}}


def describe(out: dict, *, n: int, fpr: float, against: str = "") -> str:
    """The verdict's sentence for a judge dict of :class:`assd.verify.evidence.Evidence`."""
    margin, (low, high) = out["margin"], out["window"]
    head = ("forgotten" if out["forgotten"] else "target met, but NOT forgotten: the "
            "per-example test still flags members" if out["close"] else
            f"undetermined, NOT claimed met: within chance of a model that never saw the "
            f"rows, but {n} rows are too few to place it within {100 * margin:g} points"
            if out["undetermined"] else "target missed, NOT forgotten")  # fmt: skip
    if not out["references_agree"]:
        head += " (the references disagree by more than the margin: their mean is a rough target)"
    look = "" if "look_accuracy" not in out else (
        f", held-out look-alikes {100 * out['look_accuracy']:.1f} % vs "
        f"{100 * out['look_expected']:.1f} %")  # fmt: skip
    text = (f"Forget target ({out['kind']}, from {out['n_references']} reference models that "
            f"never saw the rows): {head}. Forget-row accuracy "
            f"{100 * out['forget_accuracy']:.1f} % vs {100 * out['expected']:.1f} % for the "
            f"references (met within {100 * low:.1f}-{100 * high:.1f} %){look}; the "
            f"per-example test{against} flags {100 * out['member_share']:.1f} % of the rows "
            f"as members at a {100 * fpr:g} % false-positive rate (chance: up to "
            f"{100 * out['share_limit']:.1f} %).")  # fmt: skip
    if out["overshoot"]:
        text += (" The rows are forgotten beyond what a model that never saw them shows: "
                 "that is a membership signal too.")  # fmt: skip
    return text
