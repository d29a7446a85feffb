"""Selective Synaptic Dampening (SSD); its loss-free variant is in :mod:`assd.methods.lfssd`."""

from __future__ import annotations

import copy
import logging
import time

from torch import nn

from ..importance.core import Importance
from ..importance.estimators import DEFAULT_ESTIMATOR
from ..importance.sharded import is_sharded_model
from ..rule.dampening import dampen_parameters_
from ..tasks import check_task, default_loss
from ..verify.forget_check import before_request, one_shot_outcome
from ..verify.guard import GuardRefused, RetainGuard, guard_change
from ..verify.membership import check_forget_rows
from ..verify.outcome import Outcome, evaluation_sets, layer_changes
from ..verify.scoring import probe_task
from .registry import register
from .result import UnlearnResult, log_result
from .search import Trials, search
from .sources import ImportanceSources

__all__ = ["SSD"]

log = logging.getLogger("assd")

REFERENCES = ("full", "retain")
ON_GUARD = ("back-off", "refuse")


@register("ssd")
class SSD(ImportanceSources):
    """Selective Synaptic Dampening (Foster et al., arXiv 2308.07707).

    Dampens each weight whose forget-set importance exceeds ``alpha`` times
    its importance on the reference data, by ``min(dampening * I_D / I_Df, 1)``.

    Args:
        alpha: selection threshold (reference: 10 for ResNet18; for ViT 5
            full-class, 25 sub-class, 10 random).
        dampening: lambda (reference: 1).
        reference: what I_D is computed on: ``"full"`` (the paper: ``data=``,
            the whole training set) or ``"retain"`` (``retain=``, the training
            set without the forget rows).
        estimator: ``"sample"`` (default: the mean of per-sample squared gradients,
            batch-size invariant; measured better in docs/benchmarks.md) or ``"batch"``
            (the SSD and ASSD reference code: squared batch-mean gradients).
        train_mode: compute importances with the model in train mode.
        loss_fn, batch_fn, output_fn, max_memory, progress: passed to
            ``compute_importance`` (batches and outputs: see :mod:`assd.batches`).
        guard: the retain guard's limit (0.01 = one accuracy point, or 1 % more
            loss for regression), or None for no guard. Needs ``evaluate=``.
        on_guard: when the request would break the guard: ``"back-off"`` to the
            strongest dampening (larger alpha, same importances) that respects
            it, or ``"refuse"`` (raise :class:`assd.GuardRefused` with the figures).
        task: what the outputs mean (:mod:`assd.tasks`): ``"classification"``,
            ``"token-classification"``, ``"causal-lm"`` or ``"regression"``; it fixes
            the default loss and how ``evaluate=`` sets are scored. None: inferred from
            the shapes where one task fits them (sequence logits need it named).
        metric_fn: ``metric_fn(logits, targets)`` per row (higher is better), scored
            on ``evaluate=`` sets beside the task's figures; the guard then watches it.

    Example:
        >>> import torch, assd
        >>> model = torch.nn.Linear(4, 3)
        >>> x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
        >>> result = assd.SSD(alpha=10).unlearn(
        ...     model, forget=assd.TensorData(x[:4], y[:4]), data=assd.TensorData(x, y))
        >>> result.model is model
        False
    """

    objective = "loss"
    # Extension points of the request path (``assd-auto`` sets all three): score before and
    # after even without a guard; what "forgotten" means; which dampening to keep.
    needs_evaluation = False

    def __init__(
        self,
        *,
        alpha: float = 10.0,
        dampening: float = 1.0,
        reference: str = "full",
        estimator: str = DEFAULT_ESTIMATOR,
        train_mode: bool = False,
        loss_fn=None,
        batch_fn=None,
        max_memory: int | None = None,
        progress: bool = False,
        output_fn=None,
        guard: float | None = None,
        on_guard: str = "back-off",
        task: str | None = None,
        metric_fn=None,
    ):
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}.")
        if on_guard not in ON_GUARD:
            raise ValueError(f"on_guard must be one of {ON_GUARD}, got {on_guard!r}.")
        self.alpha, self.dampening, self.reference = alpha, dampening, reference
        self.guard = None if guard is None else RetainGuard(guard)
        self.on_guard = on_guard
        self.task, self.metric_fn = check_task(task), metric_fn
        self.score_loss_fn = loss_fn  # the user's own loss (None: the task's, per position)
        loss_fn = default_loss(task) if loss_fn is None else loss_fn  # the task fixes the loss
        self.importance_options = dict(
            objective=self.objective,
            estimator=estimator,
            loss_fn=loss_fn,
            batch_fn=batch_fn,
            train_mode=train_mode,
            max_memory=max_memory,
            progress=progress,
            output_fn=output_fn,
        )

    def forget_target(self, sets: dict):
        """A forget target for the search (None: SSD and ASSD dampen as asked)."""
        return None

    def choose(self, trials: Trials, *, retain=None) -> dict:
        """The try to keep: as asked, scored; if the guard breaks, back off or refuse."""
        first = trials.apply(0.0)
        if first["guard"] is None or first["guard"]["ok"]:
            return first
        if self.on_guard == "refuse":
            trials.restore()
            raise GuardRefused(
                f"{self.name} refused: {first['guard']['verdict']} Nothing was changed. "
                "Use a weaker request (larger alpha), a looser guard, or on_guard='back-off'.",
                {
                    **first["guard"],
                    "alpha": first["alpha"],
                    "before": {k: v.to_dict() for k, v in trials.before.items()},
                    "after": first["after"],
                },
            )
        chosen = search(trials, first=first)
        change = guard_change(first, chosen, what=f"this {self.name} request")
        chosen["guard"] = {**chosen["guard"], "changed": change}
        log.warning("%s: %s", self.name, change["headline"])
        return chosen

    def unlearn(
        self,
        model: nn.Module,
        *,
        forget,
        data=None,
        retain=None,
        importance: Importance | None = None,
        n_data: int | None = None,
        inplace: bool = False,
        forget_importance: Importance | None = None,
        evaluate: dict | None = None,
    ) -> UnlearnResult:
        """Forget ``forget`` and return an :class:`UnlearnResult`.

        Args:
            model: the trained model. Left untouched unless ``inplace=True``.
            forget: batches of the samples to forget.
            data: the whole training set (needed when ``reference="full"``; with
                ``reference="retain"`` and the sample estimator the retain
                importance is derived from it exactly).
            retain: the training set without the forget samples (``reference="retain"``).
            importance: the whole training set's importance, precomputed for these
                weights (replaces ``data``; refused if the weights changed). With
                ``reference="retain"`` the retain-set importance is derived from it.
            n_data: size of the whole training set (retain + forget); by default
                derived from the reference importance.
            inplace: dampen ``model`` itself instead of a copy.
            forget_importance: the importance of ``forget`` for these weights, when
                the caller has it already (it saves the pass over ``forget``).
            evaluate: labelled evaluation sets to score before and after,
                ``{"forget": ..., "retain": ..., "test": ...}`` (``forget``
                defaults to ``forget``); the result's ``outcome`` holds the
                figures, weights changed and a verdict. Forward passes only.
        """
        return self._unlearn(model, forget=forget, data=data, retain=retain,
                             importance=importance, n_data=n_data, inplace=inplace,
                             evaluate=evaluate, forget_importance=forget_importance)  # fmt: skip

    # ---- the request, top to bottom: importances -> alpha -> select/dampen (with search,
    # ---- guard and repair when verified) -> outcome. Each stage is one method below.

    def _unlearn(self, model, *, forget, data, retain, importance, n_data, inplace, evaluate,
                 forget_importance):  # fmt: skip
        start, timings = time.perf_counter(), {}
        self._check_request(model, inplace, forget, data, retain, importance, evaluate)
        forgotten, reference = self._importances(
            model, forget, data, retain, importance, timings, forget_importance
        )  # stage 1 (assd.methods.sources): computed, derived or given
        n_total = self._n_data(reference, forgotten, n_data)
        tick = time.perf_counter()
        alpha, percentile = self._alpha(forgotten, reference, n_total)  # stage 2
        timings["alpha"] = time.perf_counter() - tick
        target = model if inplace else copy.deepcopy(model)
        timings["copy"] = time.perf_counter() - tick - timings["alpha"]
        tick = time.perf_counter()
        if evaluate is None and not self.needs_evaluation:  # stage 3: as asked
            check = self._forget_check(target, forget, reference)  # did the forget rows move?
            counts = self._dampen(target, forgotten, reference, alpha)
            dampening, outcome = self.dampening, check(model, inplace, counts)
        else:  # stage 3, verified: scored, searched, guarded (and repaired by assd-auto)
            alpha, dampening, counts, outcome = self._dampen_verified(
                target, forgotten, reference, alpha, forget, evaluate, retain
            )
        timings["select_dampen"] = timings["dampen"] = time.perf_counter() - tick
        result = UnlearnResult(
            model=target, method=self.name, seconds=time.perf_counter() - start,
            timings=timings, alpha=alpha, percentile=percentile, dampening=dampening,
            per_layer=counts, n_forget=forgotten.n_samples, n_data=n_total,
            importance_settings=reference.settings(), outcome=outcome,
        )  # fmt: skip
        log_result(result)  # stage 4: the outcome, logged
        return result

    def _check_request(self, model, inplace, forget, data, retain, importance, evaluate) -> None:
        if self.guard is not None and evaluate is None:
            raise ValueError(
                f"{self.name} has a retain guard but no evaluation sets: pass "
                "evaluate={'retain': ..., 'test': ...} (labelled rows kept or held out)."
            )
        if not inplace and is_sharded_model(model):
            raise ValueError(
                f"{self.name}: a model sharded with FSDP2 cannot be copied; pass inplace=True "
                "(save its sharded state dict first if the original weights must be kept)."
            )
        if evaluate is not None or self.needs_evaluation:  # a task to name: ask before the passes
            probe_task(model, forget, task=self.task, batch_fn=self.importance_options["batch_fn"],
                       output_fn=self.importance_options["output_fn"])  # fmt: skip
        check_forget_rows(forget, data=data if importance is None else None, retain=retain)

    def _alpha(self, forgotten: Importance, reference: Importance, n_data: int | None):
        """``(alpha, percentile)``: SSD's fixed alpha (ASSD computes it)."""
        return float(self.alpha), None

    def _dampen(self, target: nn.Module, forgotten: Importance, reference: Importance,
                alpha: float) -> dict:  # fmt: skip
        """Select and dampen as asked, in place; ``{name: (selected, elements)}``."""
        return dampen_parameters_(
            {n: p for n, p in target.named_parameters() if n in reference.tensors},
            forgotten.tensors, reference.tensors, alpha=alpha, dampening=self.dampening,
        )  # fmt: skip

    def _forget_check(self, target, forget, reference):
        """Score the forget rows now; returns ``done(model, inplace, counts) -> Outcome | None``
        that scores them again after the request (:mod:`assd.verify.forget_check`)."""
        if is_sharded_model(target):
            return lambda *_: None
        score = {k: self.importance_options[k] for k in ("loss_fn", "batch_fn", "output_fn")}
        before = before_request(target, forget, names=reference.tensors, **score)

        def done(model, inplace, counts):
            return one_shot_outcome(before, target, forget, original=None if inplace else model,
                                    counts=counts, **score)  # fmt: skip

        return done

    def _dampen_verified(self, target, forgotten, reference, alpha, forget, evaluate, retain):
        """Dampen, scoring each try on the evaluation sets; :meth:`choose` picks the try.
        Returns ``(alpha, dampening, counts, Outcome)``."""
        if retain is not None and self.needs_evaluation and "retain" not in (evaluate or {}):
            evaluate = {**(evaluate or {}), "retain": retain}  # the retained rows it was given
        sets = evaluation_sets(evaluate, forget, batch_fn=self.importance_options["batch_fn"])
        options = {k: self.importance_options[k] for k in ("batch_fn", "output_fn")}
        trials = Trials(target, forgotten.tensors, reference.tensors, alpha0=alpha,
                        lam0=self.dampening, sets=sets, guard=self.guard,
                        target=self.forget_target(sets), loss_fn=self.score_loss_fn,
                        task=self.task, metric_fn=self.metric_fn, **options)  # fmt: skip
        try:
            chosen = self.choose(trials, retain=retain)
        except BaseException:
            trials.restore()  # the user's weights, when inplace=True
            raise
        outcome = Outcome(before=trials.before, after=chosen["scores"],
                          layers=layer_changes(trials.original, target), guard=chosen["guard"],
                          target=chosen["target"], tries=trials.path())  # fmt: skip
        return chosen["alpha"], chosen["dampening"], trials.counts, outcome

    @classmethod
    def paper(cls, **options):
        """This method as its paper's reference code ran it: the batch estimator, I_D on
        the whole training set (``data=``).

        Example:
            >>> m = SSD.paper(alpha=10)
            >>> m.importance_options["estimator"], m.reference
            ('batch', 'full')
        """
        return cls(**{"estimator": "batch", "reference": "full", **options})
