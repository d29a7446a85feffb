"""Metrics as plain functions."""

from .accuracy import accuracy, predict

__all__ = ["accuracy", "predict"]
