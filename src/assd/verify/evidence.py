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
accuracy no higher than the band, nor than the target plus the margin or the
rows' chance, whichever is wider (where references disagree, the band is wide
and its top is not evidence; on a few rows, chance is wider than the margin and
pushing below it chases noise). The final
verdict's ``"met"`` (what retraining is judged on) is ``"close"``: the accuracy
within a stated margin of the target, on the forget rows and (within the margin
or their chance band) on their held-out look-alikes; outside the margin but
within chance is ``"undetermined"`` (:mod:`assd.verify.tolerance`).
``"forgotten"`` needs the per-example test as well. For random rows the target
is first scaled to the original's strength (:meth:`Evidence.calibrate_strength`).

Example:
    >>> binomial_upper(100, 0.5)  # P(X >= 58) = 0.067, P(X >= 59) = 0.044
    58
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .bands import beta_binomial_bounds, binomial_upper, odds_ratio, odds_scale
from .conformal import chance_limit, conformal_test, usable
from .per_example import (
    ReferenceProfile,
    calibrate,
    membership_test,
    row_outputs,
)
from .split import LOOK_ALIKES, held_out_rows
from .tolerance import (
    MARGIN,
    describe,
    final_verdict,
    references_agree,
    repaired_verdict,
    window,
)

__all__ = [
    "LOOK_ALIKES",
    "Evidence",
    "beta_binomial_bounds",
    "binomial_upper",
    "final_verdict",
    "held_out_rows",
    "odds_ratio",
    "repaired_verdict",
]

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
    held_out_accuracy: float | None = None  # the references' mean accuracy on "test"
    n_held_out: int = 0
    strength: float = 1.0  # odds ratio, :meth:`calibrate_strength`
    references_from: str = "given"  # "given", "training" (this request) or "cache"
    references_seconds: float = 0.0  # what training them took (for a cached set: earlier)
    margin: float = MARGIN  # what counts as close (:mod:`assd.verify.tolerance`)

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
        test = [row_outputs(m, sets["test"], batch_fn=batch_fn, output_fn=output_fn)[1]
                for m in refs.models] if sets.get("test") is not None and kind == "rows" else []
        # (the strength only scales random rows' targets: calibrate_strength)
        return cls(profile, n_references=len(refs.models), kind=kind, fpr=fpr,
                   held_out=held_out, models=refs.models, look_alikes=look, look_profile=like,
                   held_out_accuracy=float(torch.cat(test).double().mean()) if test else None,
                   n_held_out=len(test[0]) if test else 0, references_seconds=refs.seconds,
                   references_from="given" if not refs.key else "cache" if refs.cached
                   else "training")  # fmt: skip

    def calibrate_strength(self, accuracy: float | None) -> None:
        """Scale a row-level target to a model as strong as one with ``accuracy`` on the
        held-out ``"test"`` rows (the original's: no model here trained on them). References
        train at a reduced budget on half the rows, so they get fewer rows right than a full
        retraining; random forget rows are like held-out rows, so the target's odds of a
        right answer are multiplied by the odds ratio of ``accuracy`` to the references' own
        accuracy there (:func:`odds_ratio`). Not for groups: how a never-seen model treats a
        sub-class does not follow its accuracy on other rows (measured: docs/evidence.md)."""
        if (self.kind != "rows" or accuracy is None or self.held_out_accuracy is None
                or not self.n_held_out):  # fmt: skip
            return  # only random rows are like held-out rows (docs/evidence.md)
        self.strength = odds_ratio(accuracy, self.held_out_accuracy, self.n_held_out)

    @property
    def conformal(self) -> bool:
        """Whether the per-example test is the conformal one (enough look-alikes)."""
        return self.look_profile is not None and usable(len(self.look_profile.mean), self.fpr)

    @property
    def n(self) -> int:
        return len(self.profile.mean)

    @property
    def raw_expected(self) -> float:
        """The references' own mean forget accuracy (before :meth:`calibrate_strength`)."""
        return float(self.profile.label_rate.mean())

    @property
    def expected(self) -> float:
        """The forget accuracy of a model that never saw the rows, as strong as the original."""
        return odds_scale(self.raw_expected, self.strength)

    @property
    def spread(self) -> float:
        """One such model's standard deviation around :attr:`expected`."""
        return max(self._row_spread, self._model_spread)

    @property
    def _row_spread(self) -> float:  # the rows' Poisson-binomial spread: chance
        p = self.profile.label_rate.double()
        return math.sqrt(float((p * (1 - p)).sum())) / self.n

    @property
    def _model_spread(self) -> float:  # how far the references' own accuracies stray
        acc = self.profile.accuracy[~torch.isnan(self.profile.accuracy)]
        return float(acc.std()) if len(acc) >= 2 else 0.0

    @property
    def band(self) -> tuple[float, float]:
        """The forget accuracies a model that never saw the rows reaches (level ``fpr`` each
        side): ``expected`` plus or minus ``z`` spreads, widened to the Jeffreys
        Beta-binomial quantiles of :func:`beta_binomial_bounds` on the references' pooled
        hits (a floor for few references that agree: never a band of zero width)."""
        return self._band(self.spread)

    @property
    def chance_band(self) -> tuple[float, float]:
        """:attr:`band` from the rows' chance alone (without the references' disagreement):
        the least a window around :attr:`expected` must allow (:mod:`.tolerance`)."""
        return self._band(self._row_spread)

    def _band(self, spread: float) -> tuple[float, float]:
        z = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(1 - self.fpr)))
        raw = self.raw_expected
        low, high = raw - z * spread, raw + z * spread
        p = self.profile
        hits = round(float((p.label_rate * p.counts).sum()))
        few_low, few_high = beta_binomial_bounds(self.n, hits, int(p.counts.sum()), self.fpr)
        low, high = max(min(low, few_low / self.n), 0.0), min(max(high, few_high / self.n), 1.0)
        return odds_scale(low, self.strength), odds_scale(high, self.strength)

    @property
    def share_limit(self) -> float:
        """The member share a model that never saw the rows stays within (level ``fpr``)."""
        if self.conformal:
            return chance_limit(self.n, len(self.look_profile.mean), self.fpr) / self.n
        return binomial_upper(self.n, self.fpr, level=self.fpr) / self.n

    def judge(self, model, forget, *, batch_fn=None, output_fn=None, rows=None) -> dict:
        """Whether ``model`` treats the forget rows as the references do (a JSON-ready dict);
        ``rows``: per-row outputs of this model already at hand, by set (``id(set)``)."""
        options = {"batch_fn": batch_fn, "output_fn": output_fn, "rows": rows or {}}
        conf, hits = _outputs(model, forget, options)
        look, look_hits = (None, None) if self.look_alikes is None else _outputs(
            model, self.look_alikes, options)  # fmt: skip
        held = self._held(model, look, options)
        conf = conf if held is None else calibrate(conf, held)
        if len(conf) != self.n:
            raise ValueError(f"{len(conf)} forget rows, but the references profiled {self.n}.")
        if self.conformal:
            look = look if held is None else calibrate(look, held)
            test = conformal_test(_deviation(conf, self.profile),
                                  _deviation(look, self.look_profile), fpr=self.fpr)
        else:
            test = membership_test(conf, self.profile, fpr=self.fpr)
        acc = float(hits.double().mean())
        low, high = self.band
        members = test.share <= self.share_limit + 1e-12
        over = acc < low - 1e-12
        in_band = acc <= high + 1e-12 and not over
        near = window(self.expected, (self.expected, self.expected), self.margin)
        chance = window(self.expected, self.chance_band, self.margin)
        reached = acc <= min(high, chance[1]) + 1e-12  # what the search seeks (see the module)
        agree = self.kind != "group" or references_agree(self.profile.accuracy.tolist(),
                                                         self.margin)  # same rows each  # fmt: skip
        close = near[0] - 1e-12 <= acc <= near[1] + 1e-12
        unsure = not close and chance[0] - 1e-12 <= acc <= chance[1] + 1e-12
        looks = {}
        if look_hits is not None and self.kind == "group":  # the look-alikes' own window
            look_acc = float(look_hits.double().mean())
            like = Evidence(self.look_profile, self.n_references, strength=self.strength)
            look_near = window(like.expected, like.chance_band, self.margin)
            look_ok = look_near[0] - 1e-12 <= look_acc <= look_near[1] + 1e-12
            close, unsure = close and look_ok, unsure and look_ok
            looks = {"look_accuracy": round(look_acc, 6),
                     "look_expected": round(like.expected, 6), "look_window": list(look_near)}
        out = {
            "kind": self.kind, "basis": "references", "met": reached, "overshoot": over,
            "in_band": in_band, "close": close, "forgotten": close and members,
            "undetermined": unsure, "window": list(near), "chance_window": list(chance),
            "margin": self.margin, "references_agree": agree,
            "forget_accuracy": round(acc, 6), "expected": round(self.expected, 6),
            "raw_expected": round(self.raw_expected, 6), "strength": round(self.strength, 4),
            **looks,
            "band": [round(low, 6), round(high, 6)], "n_references": self.n_references,
            "references_from": self.references_from,
            "references_seconds": round(self.references_seconds, 3),
            "share_limit": round(self.share_limit, 6), **test.to_dict(),
            "test": "look-alikes" if self.conformal else "references",
        }  # fmt: skip
        return {**out, "verdict": describe(out, n=self.n, fpr=self.fpr, against=self._against)}

    def _held(self, model, look, options: dict):
        """The judged model's confidences on :attr:`held_out`, reusing ``look`` (its
        confidences on :attr:`look_alikes`) where those rows are all or the last part of it."""
        if self.held_out is None:
            return None
        parts = getattr(self.held_out, "parts", [self.held_out])
        if look is None or parts[-1] is not self.look_alikes:
            return torch.cat([_outputs(model, part, options)[0] for part in parts])
        return torch.cat([*(_outputs(model, part, options)[0] for part in parts[:-1]), look])

    @property
    def _against(self) -> str:
        return " (against the model's own held-out look-alikes)" if self.conformal else ""

    def bind(self, model, forget, *, batch_fn=None, output_fn=None, rows=None):
        """A target for :class:`assd.methods.search.Trials`: ``target(before, after)`` judges
        ``model`` (as it is when called) on ``forget``; ``rows()``: the per-row outputs the
        scoring of that try kept (:attr:`assd.methods.search.Trials.rows`), or None."""

        def target(before: dict, after: dict) -> dict:
            return self.judge(model, forget, batch_fn=batch_fn, output_fn=output_fn,
                              rows=rows() if rows else None)  # fmt: skip

        return target


def _outputs(model, data, options: dict):
    """:func:`row_outputs` of ``model`` on ``data``, taken from ``options["rows"]`` if there."""
    kept = options["rows"].get(id(data))
    return kept if kept is not None else row_outputs(
        model, data, batch_fn=options["batch_fn"], output_fn=options["output_fn"])  # fmt: skip


def _deviation(conf: torch.Tensor, profile: ReferenceProfile) -> torch.Tensor:
    """Each row's confidence in spreads of its references' distribution."""
    return (conf.double() - profile.mean) / profile.test_scale
