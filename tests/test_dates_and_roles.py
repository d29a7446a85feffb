"""Time splits read dates by one format; the target may not be the id or the time column.

Expected orders are worked out by hand from the dates as a person reads them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assd.data.dates import read_dates
from assd.data.table import split_rows
from assd.tabular.task import TableTask

# (values, expected ISO dates) where exactly one layout reads every value
READABLE = [
    (["13/01/2024", "02/01/2024", "01/02/2024"], ["2024-01-13", "2024-01-02", "2024-02-01"]),
    (["01/13/2024", "01/02/2024", "02/01/2024"], ["2024-01-13", "2024-01-02", "2024-02-01"]),
    (["13.01.2024", "02.01.2024"], ["2024-01-13", "2024-01-02"]),
    (["25-12-23", "01-02-23"], ["2023-12-25", "2023-02-01"]),
    (["31/12/2023 23:59", "01/01/2024 00:01"], ["2023-12-31", "2024-01-01"]),
    (["2024-01-03", "2024-01-01"], ["2024-01-03", "2024-01-01"]),
    (["2024-01-03T10:00:00Z", "2024-01-01T09:00:00+01:00"], ["2024-01-03", "2024-01-01"]),
    (["3 Jan 2024", "1 Feb 2024"], ["2024-01-03", "2024-02-01"]),
    (["05/05/2024", "06/06/2024"], ["2024-05-05", "2024-06-06"]),  # day = month: one reading
]


@pytest.mark.parametrize(("values", "expected"), READABLE, ids=[v[0] for v, _ in READABLE])
def test_dates_are_read_by_the_one_layout_that_reads_them_all(values, expected):
    got = read_dates(pd.Series(values, dtype=object), "when")
    assert [str(t.date()) for t in got] == expected


AMBIGUOUS = [["03/04/2024", "05/04/2024"], ["01.02.2024", "02.01.2024"], ["1-2-24", "2-1-24"]]


@pytest.mark.parametrize("values", AMBIGUOUS, ids=[v[0] for v in AMBIGUOUS])
def test_ambiguous_day_month_is_refused_until_a_format_is_given(values):
    column = pd.Series(values, dtype=object)
    with pytest.raises(ValueError, match=r"day-first and month-first.*--date-format"):
        read_dates(column, "when")
    sep = next(c for c in values[0] if not c.isdigit())
    year = "%Y" if len(values[0].split(sep)[-1]) == 4 else "%y"
    day_first = read_dates(column, "when", f"%d{sep}%m{sep}{year}")
    month_first = read_dates(column, "when", f"%m{sep}%d{sep}{year}")
    assert day_first.iloc[0].day == int(values[0].split(sep)[0])
    assert month_first.iloc[0].month == int(values[0].split(sep)[0])


UNREADABLE = [(["2024-01-03", "soon"], 1), (["13/13/2024", "01/01/2024"], 0), (["", "x"], 0)]


@pytest.mark.parametrize(("values", "row"), UNREADABLE, ids=["word", "13/13", "blank"])
def test_a_value_that_is_no_date_is_refused_naming_the_row(values, row):
    with pytest.raises(ValueError, match=rf"not dates or times.*row {row}"):
        read_dates(pd.Series(values, dtype=object), "when")


def test_a_value_the_given_format_cannot_read_is_refused():
    with pytest.raises(ValueError, match="with --date-format '%d/%m/%Y' \\(row 1"):
        read_dates(pd.Series(["01/02/2024", "2024-02-01"]), "when", "%d/%m/%Y")


def test_a_day_first_time_split_holds_out_the_latest_rows():
    days = [f"{d:02d}/{m:02d}/2024" for m, d in [(1, 13), (2, 1), (1, 20), (3, 1), (1, 14)]]
    frame = pd.DataFrame({"when": days})
    test = split_rows(frame, "time:when", test_share=0.4)
    assert test.tolist() == [False, True, False, True, False]  # 1 Feb and 1 Mar are latest


def _frame(n=40):
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=n).strftime("%d/%m/%Y")
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "when": days, "x": rng.random(n),
                         "y": rng.choice(["a", "b"], n)})  # fmt: skip


def test_the_task_keeps_the_date_format_and_splits_by_it():
    frame = _frame()
    task = TableTask.fit(frame, target="y", split="time:when", test_share=0.25,
                         date_format="%d/%m/%Y")  # fmt: skip
    assert task.to_dict()["date_format"] == "%d/%m/%Y"
    assert sorted(task.test_ids) == sorted(str(i) for i in range(30, 40))
    again = TableTask.from_dict(task.to_dict())
    again.test_ids = None  # as an older model: the split is recomputed with the format
    assert again.held_out(frame, frame.index.astype(str).to_numpy()).sum() == 10


ROLES = [("id", {"id_column": "id"}, "id column"), ("when", {"split": "time:when"}, "time-split")]


@pytest.mark.parametrize(("target", "kw", "role"), ROLES, ids=[r[0] for r in ROLES])
def test_the_target_may_not_be_the_id_or_the_time_column(target, kw, role):
    with pytest.raises(ValueError, match=f"target '{target}' is also the {role}"):
        TableTask.fit(_frame(), target=target, **kw)
