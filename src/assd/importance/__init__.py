"""Parameter importances (diagonal Fisher) and how they are computed.

``core`` holds :class:`Importance` (saved as safetensors with the weights'
fingerprint), ``compute`` :func:`compute_importance`; ``estimators`` the batch and
per-sample accumulation; ``objectives`` the loss or output-norm objective;
``distributed`` the data-parallel reduction under ``torchrun``; ``persample/``
the engine that forms per-sample squared gradients layer by layer.
"""

from .compute import compute_importance
from .core import Importance

__all__ = ["Importance", "compute_importance"]
