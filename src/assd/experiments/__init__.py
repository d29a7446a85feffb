"""Experiments: one runner over scenario x method x seed, results in JSON lines."""

from .results import ResultLog, key_of
from .runner import environment, run_cells
from .stats import additional_correct, gap_closed, mean_sd, t_test

__all__ = [
    "ResultLog",
    "additional_correct",
    "environment",
    "gap_closed",
    "key_of",
    "mean_sd",
    "run_cells",
    "t_test",
]
