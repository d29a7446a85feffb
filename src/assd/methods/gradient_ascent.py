"""Gradient ascent on the forget set ("NegGrad"): climb the forget set's loss."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register
from .training import TrainingMethod

__all__ = ["GradientAscent"]


@register("gradient-ascent")
class GradientAscent(TrainingMethod):
    """Maximise the cross-entropy of the forget set; the retain set is not used.

    The SSD paper gives no reference setting, so the defaults are ours: 5 epochs
    over the forget loader with Adam at lr 1e-4 (the step size the SSD
    protocol gives bad teacher, amnesiac and UNSIR). Unbounded ascent
    eventually destroys the model, so keep the number of steps small.

    Args:
        epochs, lr, optimizer, ...: as in :class:`assd.methods.TrainingMethod`.

    Example:
        >>> import torch, assd
        >>> x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
        >>> model = torch.nn.Linear(4, 3)
        >>> out = GradientAscent(epochs=1).unlearn(model, forget=assd.TensorData(x[:5], y[:5]))
        >>> out.method, torch.equal(out.model.weight, model.weight)
        ('gradient-ascent', False)
    """

    data_source = "forget"

    def __init__(self, *, epochs: int = 5, lr: float = 1e-4, optimizer: str = "adam", **options):
        super().__init__(epochs=epochs, lr=lr, optimizer=optimizer, **options)

    def objective(self, model: nn.Module, inputs, targets) -> torch.Tensor:
        return -self.loss(model, inputs, targets)
