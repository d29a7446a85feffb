"""Unlearning methods: one class per method, one verb (``unlearn``), a registry."""

from .assd import ALFSSD, ASSD
from .registry import available_methods, get_method, register
from .result import UnlearnResult
from .ssd import LFSSD, SSD
from .training import FineTune, Retrain, TrainingMethod, reinitialize_

__all__ = [
    "ALFSSD",
    "ASSD",
    "LFSSD",
    "SSD",
    "FineTune",
    "Retrain",
    "TrainingMethod",
    "UnlearnResult",
    "available_methods",
    "get_method",
    "register",
    "reinitialize_",
]
