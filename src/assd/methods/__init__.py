"""Unlearning methods: one class per method, one verb (``unlearn``), a registry."""

from .amnesiac import Amnesiac
from .assd import ALFSSD, ASSD
from .auto import AutoASSD
from .bad_teacher import BadTeacher
from .gradient_ascent import GradientAscent
from .lfssd import LFSSD
from .random_labels import RandomLabels
from .registry import available_methods, get_method, register
from .result import UnlearnResult
from .scrub import SCRUB
from .ssd import SSD
from .training import FineTune, Retrain, TrainingMethod, gather, reinitialize_
from .unsir import UNSIR

__all__ = [
    "ALFSSD",
    "ASSD",
    "LFSSD",
    "SCRUB",
    "SSD",
    "UNSIR",
    "Amnesiac",
    "AutoASSD",
    "BadTeacher",
    "FineTune",
    "GradientAscent",
    "RandomLabels",
    "Retrain",
    "TrainingMethod",
    "UnlearnResult",
    "available_methods",
    "gather",
    "get_method",
    "register",
    "reinitialize_",
]
