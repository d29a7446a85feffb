"""``assd-auto``: ASSD that searches its dampening strength until a forget target is met.

ASSD's one-shot alpha (a percentile of ``I_Df / I_D``) can forget too little
(digits sub-class) or cost retained accuracy (random rows, batch estimator).
``assd-auto`` keeps ASSD's rule and importances (computed once) and moves
along one strength axis (:mod:`assd.methods.search`): ASSD's alpha first,
then a bracketing search in steps of x4 and a bisection to alpha within a
factor 1.105. Each try is the post-stage plus forward passes over the
evaluation sets. It stops at the *weakest* dampening that meets the forget
target while the retain guard holds.

If the target lies beyond the guard (the weights that carry the forget rows
also serve retained ones), it dampens at the weakest strength that meets the
target and runs a bounded repair (:mod:`assd.methods.repair`): at most
``repair_epochs`` epochs on the retained rows that hold the forget rows'
outputs where the dampening put them, stopping as soon as the guard holds, or
as soon as the pace of its last five epochs could not make the guard hold
by the bound (:func:`out_of_pace`; a hopeless repair is cut short). If the
guard still breaks (the dampening that meets the target took the model apart:
attention models), a classifier gets one more bounded repair, from the
strongest dampening the guard allows, that pushes the forget rows' loss up to
the target's (:mod:`assd.methods.target_repair`). If that breaks the guard
too, it returns the strongest dampening the guard allows and the verdict says
the target was missed (tries: ``result.outcome.tries``).

With reference models (``recipe=`` or ``references=``) the target is read off
models that never trained on the forget rows (:mod:`assd.verify.evidence`); the
verdict says "met" within a margin of it (:mod:`assd.verify.tolerance`) and
"forgotten" only when the per-example test agrees. Without them the rule targets
of :mod:`assd.methods.rule_targets` apply and the verdict says so (``"auto"``:
``"group"`` when no retained row carries the forget rows' labels, else ``"rows"``);
a causal LM's ``"sequences"``: :mod:`assd.methods.sequence_target`, whose repair pushes
the forget sequences' loss up to the never-seen sequences' (:mod:`assd.methods.sequence_repair`).
Example:
    >>> import torch, assd
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.randn(120, 4), torch.arange(120) % 3
    >>> sets = {"retain": assd.TensorData(x[y != 2], y[y != 2])}
    >>> r = assd.get_method("assd-auto").unlearn(
    ...     model, forget=assd.TensorData(x[y == 2], y[y == 2]),
    ...     data=assd.TensorData(x, y), evaluate=sets)
    >>> r.outcome.target["kind"]
    'group'
"""

from __future__ import annotations

import logging
import math

import torch

from ..batches import split_batch
from ..verify.evidence import LOOK_ALIKES, Evidence, binomial_upper
from ..verify.guard import DEFAULT_MAX_DROP, GuardRefused, guard_change
from ..verify.references import SHARED, Recipe, ReferenceCache, ReferenceSet, for_request
from ..verify.relearn import relearn_check
from ..verify.tolerance import default_margin, final_verdict
from .assd import ASSD
from .auto_repair import dampen_and_repair
from .registry import register
from .repair import REPAIR_EPOCHS, out_of_pace
from .rule_targets import (
    _group_target,
    _labels,
    _mislabelled_target,
    _rows_target,
    chance_of_wrong_label,
)
from .search import Trials, search
from .sequence_repair import repair_towards_unseen
from .sequence_target import check_unseen, sequence_target
from .target_repair import repair_towards_target

__all__ = ["AutoASSD", "binomial_upper", "chance_of_wrong_label", "out_of_pace"]

log = logging.getLogger("assd")

TARGETS = ("auto", "rows", "group", "mislabelled", "sequences")
MIN_BASE_RATE = 0.01  # a whole class: at most 1 % (or one row) may keep its label


@register("assd-auto")
class AutoASSD(ASSD):
    """ASSD with a search over its dampening strength (see the module docstring).

    Needs ``evaluate=`` with labelled retained rows (``"retain"``) for the guard
    and, for ``target="rows"``, held-out rows (``"test"``).

    Args:
        target: ``"auto"``, ``"group"``, ``"rows"``, ``"mislabelled"`` or ``"sequences"``
            (a causal LM's, :mod:`assd.methods.sequence_target`; the default with
            ``task="causal-lm"``): what being forgotten means.
        guard: the retain guard's limit (default 0.01: one accuracy point).
        on_guard: ``"back-off"`` (default: stop at the strongest dampening the
            guard allows) or ``"refuse"`` (raise if the target cannot be met within it).
        repair_epochs: when the target lies beyond the guard, at most this many
            epochs of :func:`assd.methods.repair.repair_` on the retained rows
            (``retain=``, else ``evaluate["retain"]``); 0: never repair.
        recipe: a :class:`assd.verify.references.Recipe` to train reference models
            that never saw the forget rows; the target and the verdict then come from
            them (:mod:`assd.verify.evidence`) instead of a rule.
        references: reference models given directly (a list of at least two models
            never trained on the forget rows, or a
            :class:`assd.verify.references.ReferenceSet`).
        reference_pairs: pairs of references a recipe trains (on complementary halves;
            default 1 for a group, 2 for rows: each row is then outside two of them).
        reference_seed: the seed of the halves and of the references' training.
        reference_cache: where trained references are kept and looked up (default: the
            process's :data:`assd.verify.references.SHARED`).
        fpr: the false-positive rate of the evidence's tests.
        margin: how far the forget accuracy may sit from the references' estimate and be
            met (default: 0.15 for a sub-class, else 0.05; :mod:`assd.verify.tolerance`).
        relearn_steps: after the request, fine-tune a copy this many batches on the
            retained rows and report whether the forget rows come back
            (:func:`assd.verify.relearn.relearn_check`); 0: no check.
        reference, estimator, ...: as :class:`ASSD` (default: per-sample estimator, I_D on
            the retained rows).
    """

    needs_evaluation = True

    def __init__(self, *, target: str = "auto", guard: float | None = DEFAULT_MAX_DROP,
                 repair_epochs: int = REPAIR_EPOCHS, reference: str = "retain",
                 estimator: str = "sample", recipe: Recipe | None = None, references=None,
                 reference_pairs: int | None = None, reference_seed: int = 0, fpr: float = 0.05,
                 relearn_steps: int = 0, reference_cache: ReferenceCache | None = None,
                 margin: float | None = None, **options):  # fmt: skip
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}.")
        if not isinstance(repair_epochs, int) or repair_epochs < 0:
            raise ValueError(f"repair_epochs must be an integer >= 0, got {repair_epochs!r}.")
        super().__init__(reference=reference, estimator=estimator, guard=guard, **options)
        self.target_kind, self.repair_epochs = target, repair_epochs
        if references is not None and not isinstance(references, ReferenceSet):
            references = ReferenceSet.never_saw(list(references))
        self.recipe, self.references = recipe, references
        self.reference_pairs, self.reference_seed = reference_pairs, reference_seed
        if margin is not None and not 0 <= margin < 1:
            raise ValueError(f"margin is a share of the forget rows in [0, 1), got {margin!r}.")
        self.fpr, self.relearn_steps, self.margin = fpr, relearn_steps, margin
        self.reference_cache = SHARED if reference_cache is None else reference_cache

    def forget_target(self, sets: dict):
        if "retain" not in sets:
            raise ValueError(
                "assd-auto needs labelled retained rows to judge the result: pass retain= "
                "(the rows kept) or evaluate={'retain': ..., 'test': ...}."
            )
        if self._sequences():
            check_unseen(sets)  # (assd.methods.sequence_target)
            return sequence_target(sum(len(split_batch(b, self.importance_options["batch_fn"])[1])
                                       for b in sets["forget"]))  # fmt: skip
        batch_fn = self.importance_options["batch_fn"]
        forget_labels, retain_labels = (_labels(sets[k], batch_fn) for k in ("forget", "retain"))
        kind = self._kind(forget_labels, retain_labels)
        if kind in ("rows", "mislabelled") and "test" not in sets:
            raise ValueError(
                f"assd-auto with target={kind!r} compares the forget rows with held-out rows: "
                "pass evaluate={'test': ...} (labelled rows the model never trained on), "
                "or target='group' for a class or sub-class."
            )
        evidence = self._evidence(sets, kind, torch.isin(forget_labels, retain_labels).any())
        if evidence is not None:
            return evidence
        if kind == "rows":
            return _rows_target
        if kind == "mislabelled":
            return _mislabelled_target(forget_labels)
        share = float(torch.isin(retain_labels, forget_labels.unique()).double().mean())
        return _group_target(max(share, MIN_BASE_RATE, 1 / len(forget_labels)), len(forget_labels))

    def _evidence(self, sets: dict, kind: str, kept) -> Evidence | None:
        """The target from reference models, when a recipe or references are given (``kept``:
        whether retained rows carry the forget rows' labels, for the margin)."""
        refs = self.references
        if refs is None and self.recipe is not None:
            pairs = self.reference_pairs or (1 if kind == "group" else 2)
            refs = for_request(kind, sets, self.recipe, pairs=pairs,
                               seed=self.reference_seed, cache=self.reference_cache,
                               batch_fn=self.importance_options["batch_fn"])  # fmt: skip
        if refs is None:
            return None
        evidence = Evidence.of(refs, sets, kind=kind, fpr=self.fpr, **{
            k: self.importance_options[k] for k in ("batch_fn", "output_fn")})  # fmt: skip
        evidence.margin = default_margin(kind, bool(kept)) if self.margin is None else self.margin
        return evidence

    def _sequences(self) -> bool:
        """Whether the target is a causal LM's forget sequences."""
        return self.target_kind == "sequences" or (self.target_kind == "auto"
                                                   and self.task == "causal-lm")  # fmt: skip

    def _kind(self, forget_labels: torch.Tensor, retain_labels: torch.Tensor) -> str:
        if self.target_kind != "auto":
            if self.target_kind in ("group", "mislabelled") and forget_labels.is_floating_point():
                raise ValueError(f"target={self.target_kind!r} needs class labels; use 'rows' "
                                 "for regression.")  # fmt: skip
            return self.target_kind
        if forget_labels.is_floating_point():
            return "rows"
        return "rows" if torch.isin(forget_labels, retain_labels).any() else "group"

    def choose(self, trials: Trials, *, retain=None) -> dict:
        evidence = trials.target if isinstance(trials.target, Evidence) else None
        options = {k: self.importance_options[k] for k in ("batch_fn", "output_fn")}
        if evidence is not None:  # judged on the working model, row by row
            evidence.calibrate_strength(getattr(trials.before.get("test"), "accuracy", None))
            trials.keep_rows = ("forget", "test", LOOK_ALIKES)  # one pass scores and judges
            trials.target = evidence.bind(trials.model, trials.sets["forget"], **options,
                                          rows=lambda: trials.rows)  # fmt: skip
        chosen = self._searched(trials, retain)
        if "forgotten" in chosen["target"]:  # searched on the accuracy; met: in the band
            chosen["target"] = final_verdict(chosen["target"])
        if self.relearn_steps:
            before = trials.before["forget"]
            rows = retain if retain is not None else trials.sets["retain"]
            check = relearn_check(trials.model, retain=rows, forget=trials.sets["forget"],
                                  steps=self.relearn_steps, original=(before.accuracy, before.loss),
                                  references=evidence.models if evidence else (), **options)
            verdict = f"{chosen['target']['verdict']} {check['verdict']}"
            chosen["target"] = {**chosen["target"], "relearn": check, "verdict": verdict}
        return chosen

    def _searched(self, trials: Trials, retain) -> dict:
        if trials.target(trials.before, trials.before)["met"]:
            log.warning("assd-auto: the forget rows already sit where its search would stop; "
                        "nothing was dampened (the verdict says whether that counts as met)")
            return trials.apply(-math.inf)
        chosen = search(trials)
        if not chosen["target"]["met"] and self.repair_epochs and trials.guard is not None:
            repair = repair_towards_unseen if self._sequences() else dampen_and_repair
            chosen = repair(trials, chosen, retain, epochs=self.repair_epochs,
                            options=self.importance_options)  # fmt: skip
            if not chosen["target"]["met"] and not self._sequences():  # the guard-held one
                chosen = repair_towards_target(trials, chosen, retain, epochs=self.repair_epochs,
                                               options=self.importance_options)  # fmt: skip
        if not chosen["target"]["met"] and self.on_guard == "refuse":
            trials.restore()
            raise GuardRefused(
                f"assd-auto refused: the forget target is not reachable within the retain guard "
                f"({chosen['target']['verdict']} {chosen['guard']['verdict']}). Nothing was "
                "changed; loosen the guard or use on_guard='back-off'.",
                {"target": chosen["target"], "guard": chosen["guard"], "tries": trials.path()},
            )
        if not chosen["target"]["met"]:
            log.warning("assd-auto: %s", chosen["target"]["verdict"])
            _note_guard_change(trials, chosen)
        return chosen


def _note_guard_change(trials: Trials, chosen: dict) -> None:
    """If the guard is why the target was missed, say so in the chosen try's guard record.
    Not for a repaired result: the guard holds on it, and its verdict says why the target
    was missed (the repair's bound or its goal), not the guard."""
    broken = [t for t in trials.tries if t["guard"] is not None and not t["guard"]["ok"]]
    if not broken or chosen.get("repair_epochs"):
        return
    asked = max(broken, key=lambda t: t["alpha"])  # the weakest try the guard refused
    change = guard_change(asked, chosen, what="assd-auto short of its forget target",
                          asked_as="dampened further", verbs=("held", "held"))
    chosen["guard"] = {**chosen["guard"], "changed": change}
    log.warning("assd-auto: %s", change["headline"])
