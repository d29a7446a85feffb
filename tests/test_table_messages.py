"""Tables: UTF-16 files are read (not shown as garbled names); no training rows is said so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assd.data.table import read_table
from assd.tabular.task import TableTask


def frame(n=30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"größe": rng.random(n).round(3),
                         "city": rng.choice(["Zürich", "Genève"], n),
                         "label": rng.choice(["ja", "nein"], n)})  # fmt: skip


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8", "cp1252"])
@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_a_table_in_any_common_encoding_reads_as_the_utf8_one(tmp_path, encoding, sep):
    original = frame()
    path = tmp_path / "t.csv"
    original.to_csv(path, index=False, sep=sep, encoding=encoding)
    read = read_table(path)
    assert list(read.columns) == ["größe", "city", "label"]
    pd.testing.assert_frame_equal(read, original)


def test_no_training_rows_is_said_so_not_fewer_than_2_classes():
    unlabelled = frame().assign(label=None)
    with pytest.raises(ValueError, match="no training rows: of 30 row\\(s\\), 0 are held out by "
                       "the split 'none' and 30 have no 'label' label"):  # fmt: skip
        TableTask.fit(unlabelled, target="label", split="none")
    half = frame().assign(label=lambda f: f.label.where(f.index % 2 == 0))
    dated = half.assign(when=pd.date_range("2024-01-01", periods=30).astype(str))
    with pytest.raises(ValueError, match="no training rows"):  # split holds out the labelled
        TableTask.fit(dated.assign(label=half.label.where(dated.index >= 15)), target="label",
                      split="time:when", test_share=0.5)  # fmt: skip
