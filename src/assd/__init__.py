"""assd: make a trained PyTorch model forget part of its training data.

Adaptive Selective Synaptic Dampening (ASSD) on top of Selective Synaptic
Dampening (SSD), with loss-free variants, behind one verb::

    import assd
    result = assd.ASSD().unlearn(model, forget=forget_loader, data=train_loader)
    result.model, result.alpha, result.percentile, result.n_dampened, result.seconds

Compute the training-set importance once and reuse it::

    imp = assd.compute_importance(model, train_loader)
    imp.save("train.importance.safetensors")
    assd.ASSD().unlearn(model, forget=forget_loader, importance=imp)
"""

from ._version import __version__
from .batches import TensorData
from .contract import BatchError
from .importance.compute import compute_importance
from .importance.core import Importance
from .importance.sharded_store import load_sharded_importance, save_sharded_importance
from .methods import (
    ALFSSD,
    ASSD,
    LFSSD,
    SSD,
    AutoASSD,
    FineTune,
    Retrain,
    UnlearnResult,
    available_methods,
    get_method,
    register,
)
from .rule.dampening import (
    adaptive_alpha,
    dampen_,
    dampen_parameters_,
    dampening_factor,
    relative_importance,
    select,
)
from .rule.percentile import exact_percentile, forget_percentile
from .store.fingerprint import fingerprint
from .verify.guard import GuardRefused, RetainGuard
from .verify.membership import forget_retain_loaders
from .verify.outcome import Outcome

__all__ = [
    "ALFSSD",
    "ASSD",
    "LFSSD",
    "SSD",
    "AutoASSD",
    "BatchError",
    "FineTune",
    "GuardRefused",
    "Importance",
    "Outcome",
    "RetainGuard",
    "Retrain",
    "TensorData",
    "UnlearnResult",
    "__version__",
    "adaptive_alpha",
    "available_methods",
    "compute_importance",
    "dampen_",
    "dampen_parameters_",
    "dampening_factor",
    "exact_percentile",
    "fingerprint",
    "forget_percentile",
    "forget_retain_loaders",
    "get_method",
    "load_sharded_importance",
    "register",
    "relative_importance",
    "save_sharded_importance",
    "select",
]
