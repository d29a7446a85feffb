"""Loss-free SSD: SSD with the label-free output-norm importance."""

from __future__ import annotations

from .registry import register
from .ssd import SSD

__all__ = ["LFSSD"]


@register("lfssd")
class LFSSD(SSD):
    """Loss-free SSD (Foster et al., arXiv 2402.19308): importance from the gradient
    of the output's squared L2 norm, accumulated as ``|g|``; no labels needed."""

    objective = "output_norm"
