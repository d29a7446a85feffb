"""What is differentiated: the loss of a batch, or the squared norm of the model's output.

``loss``         the loss (cross-entropy by default); gradients squared (diagonal Fisher).
``output_norm``  the mean over samples of the squared L2 norm of the output
                 (loss-free SSD); gradients taken as ``|g|``.

Example:
    >>> import torch
    >>> logits, y = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0])
    >>> float(objective_value("output_norm", logits, y, None))
    4.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["OBJECTIVES", "add_", "objective_value"]

OBJECTIVES = ("loss", "output_norm")


def objective_value(objective: str, logits: torch.Tensor, targets, loss_fn) -> torch.Tensor:
    """The batch-mean objective (``loss_fn`` decides its own reduction)."""
    if objective == "output_norm":
        return logits.flatten(1).pow(2).sum(1).mean()
    if targets is None:
        raise ValueError(
            "objective='loss' needs targets, but the batches carry none; pass labelled "
            "batches (x, y), or use objective='output_norm' (loss-free SSD)."
        )
    return (loss_fn or F.cross_entropy)(logits, targets)


def add_(acc: list[torch.Tensor], grads: list[torch.Tensor], objective: str) -> None:
    """``acc += g * g`` (``loss``) or ``acc += |g|`` (``output_norm``), in place, float32."""
    grads = [g.float() if g.dtype != torch.float32 else g for g in grads]
    if objective == "loss":
        torch._foreach_addcmul_(acc, grads, grads)
    else:
        torch._foreach_add_(acc, torch._foreach_abs(grads))
