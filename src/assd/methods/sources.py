"""Where an SSD request's two importances come from: computed, derived or given.

:class:`ImportanceSources` is the part of :class:`~assd.methods.ssd.SSD` that
turns ``data=`` / ``retain=`` / ``importance=`` into the forget set's
importance and the reference importance (the whole training set's, or the
retained rows', derived exactly as ``(n I_D - k I_Df) / (n - k)`` under the
per-sample estimator), and checks that a precomputed importance fits the
model and the method's settings.
"""

from __future__ import annotations

import logging
import time

from ..contract import describe_fn
from ..importance.compute import compute_importance
from ..importance.core import Importance

__all__ = ["ImportanceSources"]

log = logging.getLogger("assd")


class ImportanceSources:
    """Mixin of :class:`~assd.methods.ssd.SSD`: needs ``name``, ``objective``,
    ``reference`` and ``importance_options`` on the instance."""

    def _importances(self, model, forget, data, retain, importance, timings, given=None):
        """``(forget importance, reference importance)``, timed. The retain-set importance
        comes from a pass over ``retain=``, or exactly from the whole training set's
        (``importance=`` or a pass over ``data=``, per-sample estimator):
        ``I_retain = (n I_D - k I_Df) / (n - k)``."""
        start = time.perf_counter()
        full, reference = self._full_or_reference(model, data, retain, importance)
        timings["importance_data"] = time.perf_counter() - start
        source = full if full is not None else reference
        options = {**self.importance_options, "estimator": source.estimator,
                   "train_mode": source.train_mode}  # fmt: skip
        tick = time.perf_counter()
        forgotten = given  # the caller's I_Df, if it has it: no pass over forget
        if forgotten is None:
            forgotten = compute_importance(
                model, forget, fingerprint=False, label="the forget set (forget=)", **options
            )
        timings["importance_forget"] = time.perf_counter() - tick
        if full is not None and self.reference == "retain":
            self._n_data(full, forgotten, full.n_samples)  # refuses a forget set as large as D
            reference = full.without(forgotten)
        elif full is not None:
            reference = full
        self._check_batch_sizes(reference, forgotten)
        return forgotten, reference

    def _check_batch_sizes(self, reference: Importance, forgotten: Importance) -> None:
        expected_size = min(reference.batch_size, forgotten.n_samples)
        if reference.estimator == "batch" and forgotten.batch_size != expected_size:
            log.warning(
                "forget batches (%d) and reference batches (%d) differ in size; the batch "
                "estimator's scale depends on batch size: use equal sizes or "
                "estimator='sample'.",
                forgotten.batch_size,
                reference.batch_size,
            )

    def _full_or_reference(self, model, data, retain, importance):
        """``(whole training set's importance, None)`` or ``(None, retain-set importance)``."""
        if importance is not None:
            self._check_given(model, importance)
            if self.reference == "retain" and importance.reference == "retain":
                return None, importance  # already the retain set's
            return importance, None
        if self.reference == "retain" and retain is not None:
            return None, self._compute(model, retain, "retain")
        sample = self.importance_options["estimator"] == "sample"
        if data is not None and (self.reference == "full" or sample):
            return self._compute(model, data, "full"), None
        keyword, what = (
            ("data", "the whole training set")
            if self.reference == "full"
            else ("retain", "the training set without the forget samples")
        )
        raise ValueError(
            f"{self.name} with reference={self.reference!r} needs {keyword}= ({what}) "
            "or importance= (the whole training set's importance, precomputed)."
        )

    def _compute(self, model, source, reference: str) -> Importance:
        # not kept after the request, so no fingerprint (a hash of every weight) is needed
        full = reference == "full"
        label = "the training data (data=)" if full else "the retain set (retain=)"
        return compute_importance(
            model, source, fingerprint=False, reference=reference, label=label,
            **self.importance_options,
        )  # fmt: skip

    def _settings(self) -> dict:
        """What a precomputed importance must have been computed with."""
        options = self.importance_options
        loss = describe_fn(options["loss_fn"]) or "cross_entropy"
        return dict(
            objective=self.objective,
            estimator=options["estimator"],
            train_mode=options["train_mode"],
            loss=loss if self.objective == "loss" else None,
            reference=self.reference,
        )

    def _check_given(self, model, importance: Importance) -> None:
        if importance.objective != self.objective:
            raise ValueError(
                f"the importance was computed with objective {importance.objective!r}, "
                f"but {self.name} needs {self.objective!r}; recompute it."
            )
        settings = self._settings()
        if self.reference == "retain":  # the whole set's (derived from) or the retain set's
            settings["reference"] = None
        importance.check_settings(**settings)
        importance.check_fits(model)
        if self.reference == "retain" and importance.reference != "retain" and (
            importance.estimator != "sample"
        ):
            raise ValueError(
                "importance= is the whole training set's importance; with reference='retain' "
                "the retain-set importance is derived from it, which needs "
                "estimator='sample' (batch means do not subtract). Pass retain= instead, or "
                "use reference='full'."
            )

    def _n_data(self, reference: Importance, forgotten: Importance, n_data: int | None) -> int:
        if n_data is None:
            n_data = reference.n_samples + (
                forgotten.n_samples if self.reference == "retain" else 0
            )
        if n_data <= forgotten.n_samples:
            raise ValueError(
                f"the forget set ({forgotten.n_samples} samples) is as large as the training "
                f"set ({n_data}); nothing would be retained. Retrain from scratch instead, or "
                "pass the whole training set as data= (reference='full') or the rest as retain=."
            )
        return n_data
