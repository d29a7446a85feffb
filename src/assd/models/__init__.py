"""Model architectures used by the examples, experiments and tests."""

from .cnn import DigitsCNN

__all__ = ["DigitsCNN"]
