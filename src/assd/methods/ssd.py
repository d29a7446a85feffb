"""Selective Synaptic Dampening (SSD) and its loss-free variant (LFSSD)."""

from __future__ import annotations

import copy
import logging
import time

from torch import nn

from ..contract import describe_fn
from ..dampening import dampen_parameters_
from ..importance import Importance, compute_importance
from ..membership import check_forget_rows
from .registry import register
from .result import UnlearnResult

__all__ = ["LFSSD", "SSD"]

log = logging.getLogger("assd")

REFERENCES = ("full", "retain")


@register("ssd")
class SSD:
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
        estimator: ``"batch"`` (reference) or ``"sample"``.
        train_mode: compute importances with the model in train mode.
        loss_fn, batch_fn, output_fn, max_memory, progress: passed to
            ``compute_importance`` (batches and outputs: see :mod:`assd.batches`).

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

    def __init__(
        self,
        *,
        alpha: float = 10.0,
        dampening: float = 1.0,
        reference: str = "full",
        estimator: str = "batch",
        train_mode: bool = False,
        loss_fn=None,
        batch_fn=None,
        max_memory: int | None = None,
        progress: bool = False,
        output_fn=None,
    ):
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}.")
        self.alpha, self.dampening, self.reference = alpha, dampening, reference
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
    ) -> UnlearnResult:
        """Forget ``forget`` and return an :class:`UnlearnResult`.

        Args:
            model: the trained model. Left untouched unless ``inplace=True``.
            forget: batches of the samples to forget.
            data: the whole training set (needed when ``reference="full"``).
            retain: the training set without the forget samples (``reference="retain"``).
            importance: a precomputed reference importance for these weights
                (replaces ``data``/``retain``; refused if the weights changed).
            n_data: size of the whole training set (retain + forget); by default
                derived from the reference importance.
            inplace: dampen ``model`` itself instead of a copy.
            forget_importance: the importance of ``forget`` if already computed
                with this method's settings (saves the pass over the forget set).
        """
        start = time.perf_counter()
        timings = {}
        check_forget_rows(forget, data=data if importance is None else None, retain=retain)
        reference = self._reference_importance(model, data, retain, importance)
        timings["importance_data"] = time.perf_counter() - start
        options = {
            **self.importance_options,
            "estimator": reference.estimator,
            "train_mode": reference.train_mode,
        }
        tick = time.perf_counter()
        forgotten = forget_importance or compute_importance(
            model, forget, fingerprint=False, label="the forget set (forget=)", **options
        )
        timings["importance_forget"] = time.perf_counter() - tick
        expected_size = min(reference.batch_size, forgotten.n_samples)
        if reference.estimator == "batch" and forgotten.batch_size != expected_size:
            log.warning(
                "forget batches (%d) and reference batches (%d) differ in size; the batch "
                "estimator's scale depends on batch size: use equal sizes or "
                "estimator='sample'.",
                forgotten.batch_size,
                reference.batch_size,
            )
        n_total = self._n_data(reference, forgotten, n_data)
        tick = time.perf_counter()
        alpha, percentile = self._alpha(forgotten, reference, n_total)
        timings["alpha"] = time.perf_counter() - tick
        target = model if inplace else copy.deepcopy(model)
        timings["copy"] = time.perf_counter() - tick - timings["alpha"]
        counts = dampen_parameters_(
            {n: p for n, p in target.named_parameters() if n in reference.tensors},
            forgotten.tensors,
            reference.tensors,
            alpha=alpha,
            dampening=self.dampening,
        )
        timings["select_dampen"] = time.perf_counter() - tick
        timings["dampen"] = timings["select_dampen"] - timings["alpha"] - timings["copy"]
        result = UnlearnResult(
            model=target,
            method=self.name,
            seconds=time.perf_counter() - start,
            timings=timings,
            alpha=alpha,
            percentile=percentile,
            dampening=self.dampening,
            per_layer=counts,
            n_forget=forgotten.n_samples,
            n_data=n_total,
            importance_settings=reference.settings(),
        )
        log.info(
            "%s: alpha=%.4g, dampened %d of %d weights in %.2fs",
            self.name,
            alpha,
            result.n_dampened,
            result.n_params,
            result.seconds,
        )
        return result

    def _alpha(self, forgotten: Importance, reference: Importance, n_data: int | None):
        return float(self.alpha), None

    def _reference_importance(self, model, data, retain, importance) -> Importance:
        if importance is not None:
            if importance.objective != self.objective:
                raise ValueError(
                    f"the importance was computed with objective {importance.objective!r}, "
                    f"but {self.name} needs {self.objective!r}; recompute it."
                )
            importance.check_settings(**self._settings())
            importance.check_fits(model)
            return importance
        source = data if self.reference == "full" else retain
        if source is None:
            keyword, what = (
                ("data", "the whole training set")
                if self.reference == "full"
                else ("retain", "the training set without the forget samples")
            )
            raise ValueError(
                f"{self.name} with reference={self.reference!r} needs {keyword}= ({what}) "
                "or importance= (a precomputed reference importance)."
            )
        # not kept after the request, so no fingerprint (a hash of every weight) is needed
        full = self.reference == "full"
        label = "the training data (data=)" if full else "the retain set (retain=)"
        return compute_importance(
            model, source, fingerprint=False, reference=self.reference, label=label,
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


@register("lfssd")
class LFSSD(SSD):
    """Loss-free SSD (Foster et al., arXiv 2402.19308): importance from the gradient
    of the output's squared L2 norm, accumulated as ``|g|``; no labels needed."""

    objective = "output_norm"
