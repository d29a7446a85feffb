"""Tables in, model out: train on a CSV/Parquet table, unlearn named rows, evaluate.

The same functions back the ``assd train``, ``assd unlearn`` and
``assd evaluate`` commands::

    from assd.data import load_flights
    from assd.tabular import TabularModel, TrainConfig, train_table, unlearn_rows

    frame = load_flights()
    trained = train_table(frame, target="delay_class", id_column="id", split="time:time_hour")
    trained.save("models/m1")
    clean, report = unlearn_rows(TabularModel.load("models/m1"), frame, ["17", "42"])
    found = find_label_errors(TabularModel.load("models/m1"), frame, group_column="dest")
"""

from .evaluate import classify, format_classification
from .find_errors import FoundErrors, find_label_errors
from .model import TabularModel, TrainConfig, train_mlp
from .pipeline import train_table, training_rows
from .retrain import retrain_model
from .stream import OverBudget, unlearn_request
from .task import Rows, TableTask
from .unlearn import DEFAULT_OPTIONS, trained_ids, unlearn_rows

__all__ = [
    "DEFAULT_OPTIONS",
    "FoundErrors",
    "OverBudget",
    "Rows",
    "TableTask",
    "TabularModel",
    "TrainConfig",
    "classify",
    "find_label_errors",
    "format_classification",
    "retrain_model",
    "train_mlp",
    "train_table",
    "trained_ids",
    "training_rows",
    "unlearn_request",
    "unlearn_rows",
]
