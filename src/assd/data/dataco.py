"""The DataCo supply-chain table (``DataCoSupplyChainDataset.csv``) as the ASSD paper's task.

The data set is not redistributable and cannot be downloaded here; users who
have the CSV get the paper's task from it: the delay in days is
``Days for shipping (real) - Days for shipment (scheduled)``, in three
classes ``early`` (< 0), ``on_time`` (= 0) and ``late`` (>= 1); the latest
20 % of orders by ``order date (DateOrders)`` form the test set (split with
``"time:order_date"``); categoricals are one-hot encoded and numbers
min-max scaled (:class:`assd.data.Preprocessor`).

Left out: the real shipping days, ``Delivery Status``, ``Late_delivery_risk``
and the shipping date (they reveal the label); ``Order Status`` (recorded
after the fact); ids, names, e-mails, passwords, streets, zip codes, product
descriptions and images (identifiers or free text).

Example:
    >>> import pandas as pd
    >>> raw = pd.DataFrame({c: [1, 2] for c in NUMERIC} | {c: ["a", "b"] for c in CATEGORICAL}
    ...     | {"Order Item Id": [7, 8], "Days for shipping (real)": [2, 4],
    ...        "order date (DateOrders)": ["1/31/2018 22:56", "2/1/2018 9:05"]})
    >>> dataco_delay_frame(raw)[["id", "order_date", TARGET]].values.tolist()
    [['7', '2018-01-31T22:56:00', 'late'], ['8', '2018-02-01T09:05:00', 'late']]
"""

from __future__ import annotations

import logging
import os

import numpy as np

from .table import read_table

__all__ = ["CATEGORICAL", "CLASS_NAMES", "NUMERIC", "TARGET", "dataco_delay_frame", "load_dataco"]

log = logging.getLogger("assd")

TARGET, TIME_COLUMN, ID_COLUMN = "delay_class", "order_date", "id"
CLASS_NAMES = ("early", "on_time", "late")
REAL, SCHEDULED = "Days for shipping (real)", "Days for shipment (scheduled)"
ORDER_DATE, ORDER_ITEM_ID = "order date (DateOrders)", "Order Item Id"
NUMERIC = [
    SCHEDULED, "Benefit per order", "Sales per customer", "Order Item Discount",
    "Order Item Discount Rate", "Order Item Product Price", "Order Item Profit Ratio",
    "Order Item Quantity", "Sales", "Order Item Total", "Order Profit Per Order",
    "Latitude", "Longitude",
]  # fmt: skip
CATEGORICAL = [
    "Type", "Shipping Mode", "Customer Segment", "Market", "Order Region",
    "Department Name", "Category Name", "Customer Country", "Order Country",
]  # fmt: skip


def load_dataco(path: str | os.PathLike):
    """Read the DataCo CSV (its usual latin-1 encoding is detected) and derive the task.

    Returns:
        A frame with ``id``, ``order_date``, ``order_month``, ``order_weekday``,
        the feature columns and ``delay_class``; train on it with
        ``target="delay_class", id_column="id", split="time:order_date"``.
    """
    return dataco_delay_frame(read_table(path))


def dataco_delay_frame(raw):
    """Derive the task's columns from raw DataCo rows (see the module docstring)."""
    import pandas as pd

    needed = [REAL, ORDER_DATE, ORDER_ITEM_ID, *NUMERIC, *CATEGORICAL]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise ValueError(
            f"this is not the DataCo supply-chain table: it lacks columns {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}."
        )
    dates = _dates(raw[ORDER_DATE])
    real = pd.to_numeric(raw[REAL], errors="coerce")
    delay = real - pd.to_numeric(raw[SCHEDULED], errors="coerce")
    keep = delay.notna().to_numpy() & dates.notna().to_numpy()
    if not keep.all():
        log.warning("dropping %d DataCo rows without shipping days or order date", (~keep).sum())
    band = np.select([delay < 0, delay == 0], [0, 1], 2)
    frame = pd.DataFrame(
        {
            ID_COLUMN: raw[ORDER_ITEM_ID].astype(str),
            TIME_COLUMN: dates.dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "order_month": dates.dt.month,
            "order_weekday": dates.dt.day_name().str[:3],
        }
    )
    for col in NUMERIC + CATEGORICAL:
        frame[col] = raw[col].to_numpy()
    frame[TARGET] = np.asarray(CLASS_NAMES)[band]
    return frame[keep].reset_index(drop=True)


def _dates(column):
    import pandas as pd

    dates = pd.to_datetime(column, format="%m/%d/%Y %H:%M", errors="coerce")
    if dates.isna().mean() > 0.5:  # not DataCo's usual format: let pandas infer it
        dates = pd.to_datetime(column, errors="coerce")
    return dates
