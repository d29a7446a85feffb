"""Data sets and forget-set scenarios."""

from .digits import DigitsSplit, load_digits_split
from .label_errors import LabelErrors, inject_label_errors
from .preprocess import Preprocessor
from .scenarios import DATASETS, SCENARIOS, ImageData, Scenario, load_dataset, make_scenario
from .table import read_forget_ids, read_table, row_ids, split_rows


def __getattr__(name: str):  # loaders that need pandas, imported on first use
    if name in ("load_flights", "flights_path"):
        from . import flights

        return getattr(flights, name)
    if name == "load_dataco":
        from .dataco import load_dataco

        return load_dataco
    raise AttributeError(f"module 'assd.data' has no attribute {name!r}")

__all__ = [
    "DATASETS",
    "SCENARIOS",
    "DigitsSplit",
    "ImageData",
    "LabelErrors",
    "Preprocessor",
    "Scenario",
    "flights_path",
    "inject_label_errors",
    "load_dataco",
    "load_dataset",
    "load_digits_split",
    "load_flights",
    "make_scenario",
    "read_forget_ids",
    "read_table",
    "row_ids",
    "split_rows",
]
