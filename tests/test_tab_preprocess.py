"""Table preprocessing: fitted on training rows only, re-applied identically from JSON."""

import numpy as np
import pandas as pd
import pytest

from assd.data import Preprocessor, read_table, split_rows
from assd.tabular import TableTask


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(50, 10, n),
            "city": rng.choice(
                ["Ayr", "Bath", "Cork", "Derry", "Ely"], n, p=[0.4, 0.3, 0.2, 0.07, 0.03]
            ),
            "const": 1.0,
            "when": pd.date_range("2024-01-01", periods=n, freq="h").astype(str),
            "label": rng.choice(["a", "b", "c"], n),
        }
    )


def test_min_max_and_one_hot_match_a_hand_computation():
    frame = _frame()
    prep = Preprocessor.fit(frame, numeric=["amount"], categorical=["city"], max_levels=3)
    x = prep.transform(frame)
    lo, hi = frame.amount.min(), frame.amount.max()
    np.testing.assert_allclose(x[:, 0], (frame.amount - lo) / (hi - lo), rtol=1e-6)
    top3 = frame.city.value_counts().index[:3].tolist()
    assert prep.feature_names == ["amount"] + [f"city={c}" for c in top3] + ["city=other"]
    expected_other = ~frame.city.isin(top3)
    assert (x[:, -1] == expected_other.to_numpy()).all()
    assert (x[:, 1:].sum(1) == 1).all()  # exactly one level per row


def test_constant_features_are_dropped_and_missing_values_filled():
    frame = _frame()
    frame.loc[3, "amount"] = np.nan
    prep = Preprocessor.fit(frame, numeric=["amount", "const"], categorical=[])
    assert prep.feature_names == ["amount"]
    median = np.nanmedian(frame.amount)
    lo, hi = np.nanmin(frame.amount), np.nanmax(frame.amount)
    assert prep.transform(frame)[3, 0] == pytest.approx((median - lo) / (hi - lo))


def test_fit_sees_training_rows_only():
    frame = _frame()
    test = split_rows(frame, "time:when", test_share=0.25)
    assert test.sum() == 50 and test[-50:].all()  # the latest quarter
    frame.loc[test, "amount"] = 1e6  # extreme values and a new level in held-out rows only
    frame.loc[test, "city"] = "Zurich"
    task = TableTask.fit(frame, target="label", split="time:when", test_share=0.25)
    prep = task.preprocessor
    assert prep.high["amount"] == frame.amount[~test].max()
    assert "Zurich" not in prep.levels["city"]
    train_only = Preprocessor.fit(frame[~test], numeric=prep.numeric, categorical=prep.categorical)
    assert train_only.to_dict() == prep.to_dict()
    city = [i for i, name in enumerate(prep.feature_names) if name.startswith("city=")]
    one_hot = task.encode(frame).x[:, city].sum(1).numpy()
    assert (one_hot[~test] == 1).all()  # "other" never occurs in training: its column is
    assert (one_hot[test] == 0).all()  # constant there, dropped, so unseen levels are all-zero


def test_json_round_trip_reapplies_identically(tmp_path):
    frame = _frame()
    task = TableTask.fit(frame, target="label", split="random", seed=1)
    path = tmp_path / "prep.json"
    task.preprocessor.save(path)
    again = Preprocessor.load(path)
    later = _frame(seed=5)  # new rows, same columns
    np.testing.assert_array_equal(again.transform(later), task.preprocessor.transform(later))
    reloaded = TableTask.from_dict(task.to_dict())
    a, b = task.encode(frame), reloaded.encode(frame)
    assert (a.x == b.x).all() and (a.y == b.y).all() and (a.test == b.test).all()


def test_task_excludes_target_ids_and_time_and_labels_unknown_classes():
    frame = _frame()
    frame["row"] = [f"r{i}" for i in range(len(frame))]
    task = TableTask.fit(frame, target="label", id_column="row", split="time:when")
    assert {"label", "row", "when"}.isdisjoint(
        task.preprocessor.numeric + task.preprocessor.categorical
    )
    assert task.encode(frame).ids[:2].tolist() == ["r0", "r1"]
    frame.loc[0, "label"] = "never-seen"
    assert task.labels(frame)[0] == -1
    held_out = int(np.flatnonzero(task.encode(frame.assign(label="a")).test)[0])
    frame.loc[held_out, "label"] = "also-new"  # a held-out row: left out, not refused
    frame.loc[1, "label"] = None  # missing: unknown, not refused
    train_row = int(np.flatnonzero(~task.encode(frame.assign(label="a")).test)[0])
    frame.loc[train_row, "label"] = "never-seen"
    with pytest.raises(ValueError, match="classes the model was not trained on"):
        task.encode(frame)
    frame.loc[train_row, "label"] = "a"
    frame.loc[0, "label"] = "a"
    encoded = task.encode(frame)
    assert encoded.y[held_out] == -1 and encoded.y[1] == -1


def test_read_table_sniffs_delimiter_encoding_and_reads_parquet(tmp_path):
    frame = pd.DataFrame({"city": ["Zürich", "Genève"], "n": [1, 2], "y": ["a", "b"]})
    path = tmp_path / "t.csv"
    path.write_bytes(frame.to_csv(sep=";", index=False).encode("cp1252"))
    back = read_table(path)
    assert back.city.tolist() == ["Zürich", "Genève"] and back.n.tolist() == [1, 2]
    frame.to_parquet(tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.parquet").equals(frame)
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unknown file type"):
        read_table(tmp_path / "t.xlsx")
