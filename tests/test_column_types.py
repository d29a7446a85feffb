"""Columns are read at evaluate/unlearn with the types fixed at training.

pandas types a column of integer codes as int64, but as float64 once one cell
is blank; the encoding must not change with it. Expected features come from
the same rows encoded from the clean table (an independent path).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assd.tabular.task import TableTask


def table(n=60, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.random(n), "code": rng.integers(1, 5, n)})
    frame["label"] = np.where(frame.x + frame.code / 5 > 1.0, 1, 0)
    return frame


def fitted(frame, **kw) -> TableTask:
    return TableTask.fit(frame, target="label", split="none", categorical=["code"], **kw)


DRIFTS = {
    "float-with-blank": lambda c: c.astype(float).where(c.index != 3),
    "float-no-blank": lambda c: c.astype(float),
    "text": lambda c: c.astype(str).astype(object),
    "zero-padded-text": lambda c: c.map(lambda v: f"{v:02d}").astype(object),
    "nullable-int": lambda c: c.astype("Int64").where(c.index != 3),
    "int32": lambda c: c.astype(np.int32),
    "text-with-blank": lambda c: c.astype(str).astype(object).where(c.index != 3),
}


@pytest.mark.parametrize("drift", DRIFTS, ids=list(DRIFTS))
def test_integer_codes_encode_alike_however_pandas_typed_them(drift):
    frame = table()
    task = fitted(frame)
    changed = frame.copy()
    changed["code"] = DRIFTS[drift](frame["code"])
    expected = task.encode(frame).x.numpy()
    got = task.encode(changed).x.numpy()
    rows = changed["code"].notna().to_numpy()
    np.testing.assert_array_equal(got[rows], expected[rows])
    names = task.preprocessor.feature_names
    kept = [i for i, n in enumerate(names) if n in {f"code={v}" for v in range(1, 5)}]
    assert len(kept) == 4 and (got[rows][:, kept].sum(1) == 1).all()  # none fell into "other"


BAD_CODES = [1.5, "x", "3a", float("inf"), "1e400"]


@pytest.mark.parametrize("bad", BAD_CODES, ids=repr)
def test_a_code_that_cannot_be_read_as_trained_is_refused_naming_the_column(bad):
    frame = table()
    task = fitted(frame)
    changed = frame.astype({"code": object})
    changed.loc[7, "code"] = bad
    with pytest.raises(ValueError, match=r"categorical column 'code'.*row 7"):
        task.encode(changed)


LABEL_DRIFTS = {
    "float-with-blank": lambda c: c.astype(float).where(c.index != 5),
    "float": lambda c: c.astype(float),
    "nullable": lambda c: c.astype("Int64").where(c.index != 5),
}


@pytest.mark.parametrize("train_drift", [None, *LABEL_DRIFTS], ids=str)
@pytest.mark.parametrize("use_drift", [None, *LABEL_DRIFTS], ids=str)
def test_0_1_labels_with_a_blank_match_at_training_and_later(train_drift, use_drift):
    frame = table()
    trained = frame.copy()
    if train_drift:
        trained["label"] = LABEL_DRIFTS[train_drift](frame["label"])
    task = fitted(trained)
    assert task.class_names == ["0", "1"]
    later = frame.copy()
    if use_drift:
        later["label"] = LABEL_DRIFTS[use_drift](frame["label"])
    y = task.encode(later).y.numpy()
    known = later["label"].notna().to_numpy()
    np.testing.assert_array_equal(y[known], frame["label"].to_numpy()[known])
    assert (y[~known] == -1).all()


def test_a_model_that_stored_float_class_names_still_reads_integer_labels():
    frame = table()
    task = fitted(frame)
    task.class_names = ["0.0", "1.0"]  # what earlier versions stored for a column with a blank
    np.testing.assert_array_equal(task.labels(frame).numpy(), frame["label"].to_numpy())


def test_text_labels_are_compared_exactly():
    frame = table().astype({"label": str})
    frame["label"] = frame["label"].map({"0": "1.0", "1": "x"})
    task = fitted(frame)
    assert task.class_names == ["1.0", "x"]
    np.testing.assert_array_equal(task.labels(frame).numpy(), (frame.label == "x").to_numpy())
