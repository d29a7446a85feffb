"""Forget targets and verdicts taken from reference models: evidence, not a rule.

:class:`Evidence` holds what models that never trained on the forget rows do
with them (:meth:`assd.verify.references.ReferenceSet.profile`):

- the **target**: the share of forget rows such a model predicts with their
  label, ``sum(p_i) / n`` with ``p_i`` the rate at which the references give
  row ``i`` its label;
- the **tolerance**: how far one such model strays from it, the larger of the
  Poisson-binomial spread of the rows, ``sqrt(sum p_i (1 - p_i)) / n``, and the
  spread of the references' own accuracies. The band is the target plus or
  minus ``z`` spreads, ``z`` the normal quantile at the stated ``fpr``, and at
  least the Jeffreys Beta-binomial quantiles of the references' pooled hits
  (:func:`beta_binomial_bounds`: two references that miss every row do not
  make a band of zero width);
- the **per-example test** (:mod:`assd.verify.per_example`): the share of
  rows still flagged as members at ``fpr``, allowed up to what a model that
  never saw the rows reaches by chance (a Binomial(n, fpr) count at level
  ``fpr``). Confidences are ranked among the same model's held-out rows
  (:func:`held_out_rows`: with look-alikes of the forget rows, so that a row is
  compared with rows like it that no model trained on).

A judged model's ``"met"`` during the search (what it stops on) is the
accuracy no higher than the band. The final verdict's ``"met"`` (the target,
what retraining is judged on) is the accuracy *inside* the band (below it is
over-forgetting: a model that never saw the rows would not treat them so);
``"forgotten"`` needs the per-example test as well. The per-example test is
not a stopping rule: after dampening, trained rows can keep ranking above their
look-alikes at every strength (docs/evidence.md).

Example:
    >>> binomial_upper(100, 0.5)  # P(X >= 58) = 0.067, P(X >= 59) = 0.044
    58
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .conformal import chance_limit, conformal_test, usable
from .per_example import (
    ReferenceProfile,
    calibrate,
    membership_test,
    row_confidences,
    row_outputs,
)
from .split import FORGOTTEN_PART

__all__ = [
    "LOOK_ALIKES",
    "Evidence",
    "beta_binomial_bounds",
    "binomial_upper",
    "final_verdict",
    "held_out_rows",
    "repaired_verdict",
]

# Held-out rows like the forget rows (e.g. a forgotten class's test rows); not guarded.
LOOK_ALIKES = "test" + FORGOTTEN_PART


class Chained:
    """Batches of several sets, one after the other (iterable more than once)."""

    def __init__(self, parts: list):
        self.parts = list(parts)

    def __iter__(self):
        for part in self.parts:
            yield from part


def held_out_rows(sets: dict):
    """The rows every model's confidences are calibrated on (:func:`calibrate`): ``"test"``
    and :data:`LOOK_ALIKES`. Without look-alikes of the forget rows, a model that predicts a
    forgotten class below every held-out row is only known to sit *below* them (censored);
    with them, each forget row is ranked among rows like it that no model trained on, and
    the test asks whether the model treats the rows it trained on differently. None: no
    held-out rows."""
    parts = [sets[k] for k in ("test", LOOK_ALIKES) if sets.get(k) is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Chained(parts)


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


@dataclass
class Evidence:
    """The forget target and tolerance read off reference models (see the module docstring).

    Args:
        profile: the reference distribution of every forget row.
        n_references: how many reference models it comes from.
        kind: what the request forgets (``"group"``, ``"rows"``, ...), for the verdict.
        fpr: the false-positive rate of every test here.
        held_out: rows no model here trained on, when the profile's confidences were
            calibrated on them (:func:`assd.verify.per_example.calibrate`); the judged
            model's confidences are then calibrated the same way.
        look_alikes, look_profile: held-out rows like the forget rows and the references'
            profile of them; with at least ``1 / fpr - 1`` of them the per-example test is
            the conformal one (:mod:`assd.verify.conformal`): the judged model's forget
            rows against its own look-alikes.
    """

    profile: ReferenceProfile
    n_references: int
    kind: str = "group"
    fpr: float = 0.05
    held_out: object = None
    models: list = field(default_factory=list, repr=False)  # the references themselves
    look_alikes: object = field(default=None, repr=False)
    look_profile: ReferenceProfile | None = field(default=None, repr=False)

    @classmethod
    def of(cls, refs, sets: dict, *, kind: str, fpr: float = 0.05, batch_fn=None,
           output_fn=None) -> Evidence:  # fmt: skip
        """Evidence from a :class:`assd.verify.references.ReferenceSet` on a request's sets:
        every confidence calibrated on :func:`held_out_rows`, with the forget rows'
        look-alikes (:data:`LOOK_ALIKES`; for random rows, ``"test"``) as the null."""
        held_out = held_out_rows(sets)
        look = sets.get(LOOK_ALIKES, sets.get("test") if kind == "rows" else None)
        profile, like = (None if rows is None else refs.profile(
            rows, held_out=held_out, batch_fn=batch_fn, output_fn=output_fn)
            for rows in (sets["forget"], look))  # fmt: skip
        return cls(profile, n_references=len(refs.models), kind=kind, fpr=fpr,
                   held_out=held_out, models=refs.models, look_alikes=look,
                   look_profile=like)  # fmt: skip

    @property
    def conformal(self) -> bool:
        """Whether the per-example test is the conformal one (enough look-alikes)."""
        return self.look_profile is not None and usable(len(self.look_profile.mean), self.fpr)

    @property
    def n(self) -> int:
        return len(self.profile.mean)

    @property
    def expected(self) -> float:
        """The forget accuracy of a model that never saw the rows."""
        return float(self.profile.label_rate.mean())

    @property
    def spread(self) -> float:
        """One such model's standard deviation around :attr:`expected`."""
        p = self.profile.label_rate.double()
        rows = math.sqrt(float((p * (1 - p)).sum())) / self.n
        acc = self.profile.accuracy[~torch.isnan(self.profile.accuracy)]
        models = float(acc.std()) if len(acc) >= 2 else 0.0
        return max(rows, models)

    @property
    def band(self) -> tuple[float, float]:
        """The forget accuracies a model that never saw the rows reaches (level ``fpr`` each
        side): ``expected`` plus or minus ``z`` spreads, widened to the Jeffreys
        Beta-binomial quantiles of :func:`beta_binomial_bounds` on the references' pooled
        hits (a floor for few references that agree: never a band of zero width)."""
        z = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(1 - self.fpr)))
        low, high = self.expected - z * self.spread, self.expected + z * self.spread
        p = self.profile
        hits = round(float((p.label_rate * p.counts).sum()))
        few_low, few_high = beta_binomial_bounds(self.n, hits, int(p.counts.sum()), self.fpr)
        return max(min(low, few_low / self.n), 0.0), min(max(high, few_high / self.n), 1.0)

    @property
    def share_limit(self) -> float:
        """The member share a model that never saw the rows stays within (level ``fpr``)."""
        if self.conformal:
            return chance_limit(self.n, len(self.look_profile.mean), self.fpr) / self.n
        return binomial_upper(self.n, self.fpr, level=self.fpr) / self.n

    def judge(self, model, forget, *, batch_fn=None, output_fn=None) -> dict:
        """Whether ``model`` treats the forget rows as the references do (a JSON-ready dict)."""
        options = {"batch_fn": batch_fn, "output_fn": output_fn}
        conf, hits = row_outputs(model, forget, **options)
        held = None if self.held_out is None else row_confidences(model, self.held_out, **options)
        conf = conf if held is None else calibrate(conf, held)
        if len(conf) != self.n:
            raise ValueError(f"{len(conf)} forget rows, but the references profiled {self.n}.")
        if self.conformal:
            look = row_confidences(model, self.look_alikes, **options)
            look = look if held is None else calibrate(look, held)
            test = conformal_test(_deviation(conf, self.profile),
                                  _deviation(look, self.look_profile), fpr=self.fpr)
        else:
            test = membership_test(conf, self.profile, fpr=self.fpr)
        acc = float(hits.double().mean())
        low, high = self.band
        reached = acc <= high + 1e-12
        members = test.share <= self.share_limit + 1e-12
        over = acc < low - 1e-12
        in_band = reached and not over
        return {
            "kind": self.kind, "basis": "references", "met": reached, "overshoot": over,
            "in_band": in_band, "forgotten": in_band and members,
            "forget_accuracy": round(acc, 6), "expected": round(self.expected, 6),
            "band": [round(low, 6), round(high, 6)], "n_references": self.n_references,
            "share_limit": round(self.share_limit, 6), **test.to_dict(),
            "test": "look-alikes" if self.conformal else "references",
            "verdict": self._verdict(acc, test.share, in_band, in_band and members, over),
        }  # fmt: skip

    def _verdict(self, acc: float, share: float, in_band: bool, forgotten: bool,
                 over: bool) -> str:  # fmt: skip
        low, high = self.band
        head = ("forgotten" if forgotten else "target met, but NOT forgotten: the per-example "
                "test still flags members" if in_band else "target missed, NOT forgotten")
        text = (f"Forget target ({self.kind}, from {self.n_references} reference models that "
                f"never saw the rows): {head}. Forget-row accuracy {100 * acc:.1f} % vs "
                f"{100 * self.expected:.1f} % for the references (band {100 * low:.1f}-"
                f"{100 * high:.1f} %); the per-example test{self._against} flags "
                f"{100 * share:.1f} % of the rows as members at a {100 * self.fpr:g} % "
                f"false-positive rate (chance: up to "
                f"{100 * self.share_limit:.1f} %).")  # fmt: skip
        if over:
            text += (" The rows are forgotten beyond what a model that never saw them shows: "
                     "that is a membership signal too.")  # fmt: skip
        return text

    @property
    def _against(self) -> str:
        return " (against the model's own held-out look-alikes)" if self.conformal else ""

    def bind(self, model, forget, *, batch_fn=None, output_fn=None):
        """A target for :class:`assd.methods.search.Trials`: ``target(before, after)`` judges
        ``model`` (as it is when called) on ``forget``."""

        def target(before: dict, after: dict) -> dict:
            return self.judge(model, forget, batch_fn=batch_fn, output_fn=output_fn)

        return target


def _deviation(conf: torch.Tensor, profile: ReferenceProfile) -> torch.Tensor:
    """Each row's confidence in spreads of its references' distribution."""
    return (conf.double() - profile.mean) / profile.test_scale


def repaired_verdict(after: dict) -> str:
    """What a judge dict says of a repaired model, for the request's verdict text."""
    if "forgotten" not in after:  # a rule target
        return "still meets the target" if after["met"] else "no longer meets the target"
    head = ("forgotten" if after["forgotten"] else "target met, NOT forgotten"
            if after["in_band"] else "target missed, NOT forgotten")  # fmt: skip
    return f"per-example members {100 * after['member_share']:.1f} %: {head}"


def final_verdict(target: dict) -> dict:
    """The verdict on the model returned (the repaired one when a repair ran; its figures
    are then the target's own): ``met``, the target, is the forget accuracy inside the band
    (what retraining is judged on); ``forgotten`` needs the per-example test too."""
    after = target.get("after_repair")
    if after is None:
        return {**target, "met": target["in_band"]}
    after = {**after, "met": after["in_band"]}
    return {**target, "after_repair": after, "dampened": {k: target[k] for k in
            ("forget_accuracy", "member_share", "in_band", "forgotten")},
            **{k: after[k] for k in ("met", "in_band", "forgotten", "overshoot",
                                     "forget_accuracy", "member_share", "below_share")}}
