"""Adaptive SSD (ASSD): SSD with alpha chosen from the data, lambda fixed at 1."""

from __future__ import annotations

from ..importance.core import Importance
from ..rule.dampening import adaptive_alpha
from .registry import register
from .ssd import SSD

__all__ = ["ALFSSD", "ASSD"]


@register("assd")
class ASSD(SSD):
    """Adaptive Selective Synaptic Dampening (Schoepf et al., arXiv 2402.10098).

    No hyperparameters to tune: lambda = 1, and alpha is the p-th percentile
    of the relative importances ``I_Df / I_D`` pooled over all trainable
    elements (NaN and inf dropped), with ``p = 100 - ln(1 + 100 * |Df| / |D|)``
    and ``|D|`` the size of the whole training set.

    Defaults: the per-sample estimator and I_D on the retained rows (derived
    exactly from ``data=`` when ``retain=`` is not given), as the table CLI;
    measured against the paper's setup in docs/benchmarks.md. The paper's
    setup is :meth:`SSD.paper`: ``ASSD.paper()``.

    Args:
        reference: what I_D is computed on: ``"retain"`` (default) or ``"full"`` (paper).
        estimator, train_mode, loss_fn, batch_fn, max_memory, progress, guard,
            on_guard: as in :class:`SSD`.

    Example:
        >>> import torch, assd
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Linear(4, 3)
        >>> x, y = torch.randn(100, 4), torch.randint(0, 3, (100,))
        >>> r = assd.ASSD().unlearn(model, forget=assd.TensorData(x[:5], y[:5]),
        ...                         data=assd.TensorData(x, y))
        >>> round(r.percentile, 2)
        98.21
    """

    def __init__(self, *, reference: str = "retain", **options):
        if "alpha" in options or "dampening" in options:
            raise ValueError(
                "ASSD chooses alpha itself and fixes lambda at 1; use SSD(alpha=..., "
                "dampening=...) to set them by hand."
            )
        super().__init__(reference=reference, **options)
        self.alpha = None

    def _alpha(self, forgotten: Importance, reference: Importance, n_data: int | None):
        return adaptive_alpha(
            forgotten.tensors, reference.tensors, n_forget=forgotten.n_samples, n_data=n_data
        )


@register("alfssd")
class ALFSSD(ASSD):
    """Adaptive loss-free SSD: ASSD's alpha with LFSSD's label-free importance."""

    objective = "output_norm"

    def __init__(self, *, reference: str = "full", **options):
        super().__init__(reference=reference, **options)
