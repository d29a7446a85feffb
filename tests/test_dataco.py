"""The DataCo loader on a small generated file with the real table's columns."""

import numpy as np
import pandas as pd
import pytest

from assd.data import load_dataco
from assd.data.dataco import CATEGORICAL, NUMERIC
from assd.tabular import TrainConfig, train_table

# The real DataCoSupplyChainDataset.csv header (53 columns), in its order.
COLUMNS = [
    "Type", "Days for shipping (real)", "Days for shipment (scheduled)", "Benefit per order",
    "Sales per customer", "Delivery Status", "Late_delivery_risk", "Category Id",
    "Category Name", "Customer City", "Customer Country", "Customer Email", "Customer Fname",
    "Customer Id", "Customer Lname", "Customer Password", "Customer Segment", "Customer State",
    "Customer Street", "Customer Zipcode", "Department Id", "Department Name", "Latitude",
    "Longitude", "Market", "Order City", "Order Country", "Order Customer Id",
    "order date (DateOrders)", "Order Id", "Order Item Cardprod Id", "Order Item Discount",
    "Order Item Discount Rate", "Order Item Id", "Order Item Product Price",
    "Order Item Profit Ratio", "Order Item Quantity", "Sales", "Order Item Total",
    "Order Profit Per Order", "Order Region", "Order State", "Order Status", "Order Zipcode",
    "Product Card Id", "Product Category Id", "Product Description", "Product Image",
    "Product Name", "Product Price", "Product Status", "shipping date (DateOrders)",
    "Shipping Mode",
]  # fmt: skip


def make_dataco(n=300, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.random(n).round(3) for c in COLUMNS})
    for col in [*CATEGORICAL, "Customer City", "Delivery Status", "Order Status"]:
        frame[col] = rng.choice(["Caguas", "São Paulo", "Köln", "Lyon"], n)
    frame["Shipping Mode"] = rng.choice(["Standard Class", "First Class", "Same Day"], n)
    frame["Days for shipment (scheduled)"] = rng.integers(0, 5, n)
    frame["Days for shipping (real)"] = frame["Days for shipment (scheduled)"] + rng.integers(
        -2, 3, n
    )
    minutes = np.sort(rng.integers(0, 60 * 24 * 365, n))
    dates = pd.Timestamp("2017-01-01") + pd.to_timedelta(minutes, unit="min")
    frame["order date (DateOrders)"] = [
        f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}" for d in dates
    ]
    frame["Order Item Id"] = np.arange(1, n + 1)
    return frame[COLUMNS]


def test_loader_derives_the_papers_classes_and_drops_leaky_columns(tmp_path):
    raw = make_dataco()
    path = tmp_path / "DataCoSupplyChainDataset.csv"
    raw.to_csv(path, index=False, encoding="latin-1")  # the real file is latin-1
    frame = load_dataco(path)
    delay = raw["Days for shipping (real)"] - raw["Days for shipment (scheduled)"]
    expected = np.where(delay < 0, "early", np.where(delay == 0, "on_time", "late"))
    assert frame["delay_class"].tolist() == expected.tolist()
    assert frame["id"].tolist() == raw["Order Item Id"].astype(str).tolist()
    assert "São Paulo" in set(frame["Market"])  # decoded, not mangled
    leaky = {"Days for shipping (real)", "Delivery Status", "Late_delivery_risk",
             "shipping date (DateOrders)", "Order Status", "Customer Password"}  # fmt: skip
    assert leaky.isdisjoint(frame.columns)
    assert set(NUMERIC + CATEGORICAL) <= set(frame.columns)
    first = pd.Timestamp(frame["order_date"].iloc[0])
    assert (
        raw["order date (DateOrders)"].iloc[0]
        == f"{first.month}/{first.day}/{first.year} {first.hour}:{first.minute:02d}"
    )


def test_the_papers_pipeline_trains_on_it_with_a_time_split(tmp_path):
    frame = make_dataco(seed=1)
    frame.to_csv(tmp_path / "d.csv", index=False)
    task_frame = load_dataco(tmp_path / "d.csv")
    trained = train_table(
        task_frame, target="delay_class", id_column="id", split="time:order_date",
        config=TrainConfig(epochs=2, batch_size=64),
    )  # fmt: skip
    assert trained.extra["data"]["n_test"] == 60  # the latest 20 % of orders
    assert trained.task.class_names == ["early", "late", "on_time"]
    assert "Days for shipment (scheduled)" in trained.task.preprocessor.numeric


def test_other_tables_are_refused_with_a_clear_message(tmp_path):
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(ValueError, match="not the DataCo supply-chain table"):
        load_dataco(tmp_path / "x.csv")
