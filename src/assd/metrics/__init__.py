"""Metrics as plain functions."""

from .accuracy import accuracy, predict
from .classification import classification_summary
from .mia import auc, entropy_mia, logits_of, loss_mia_auc, mia_share, softmax_entropy
from .zrf import js_divergence, zrf, zrf_from_logits

__all__ = [
    "accuracy",
    "auc",
    "classification_summary",
    "entropy_mia",
    "js_divergence",
    "logits_of",
    "loss_mia_auc",
    "mia_share",
    "predict",
    "softmax_entropy",
    "zrf",
    "zrf_from_logits",
]
