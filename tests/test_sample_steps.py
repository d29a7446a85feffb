"""How the sample estimator groups rows into steps does not change what it computes.

The definition (independent of the engine): the mean over samples of each
sample's own squared gradient, from one ordinary ``autograd`` backward per
sample (the batch estimator on batches of one). Checked here: the row-split
product of :mod:`assd.importance.persample.products` against NumPy; batches larger than the first
chunk's check slice; table batches joined into larger steps (and other batches
not joined); the table request without a cache hashing no data key.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import assd.importance.estimators
import assd.tabular.unlearn
from assd import TensorData, compute_importance
from assd.importance.persample.engine import CHECK_ROWS
from assd.importance.persample.products import add_row_product_


def _definition(model, x, y):
    ones = [(x[i : i + 1], y[i : i + 1]) for i in range(len(x))]
    return compute_importance(model, ones, estimator="batch", fingerprint=False)


def _assert_equal(got, want):
    scale = max(float(t.max()) for t in want.tensors.values())
    for name, t in want.tensors.items():
        torch.testing.assert_close(got.tensors[name], t, rtol=2e-5, atol=1e-7 * scale)


def _mlp(n_features=6, n_classes=3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(n_features, 8), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.Linear(8, n_classes))  # fmt: skip
    model[1].running_mean.normal_()
    model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("pieces", [1, 2, 3, 7])
def test_row_split_product_equals_numpy(pieces):
    rng = np.random.default_rng(pieces)
    left, right = rng.standard_normal((1000, 5)), rng.standard_normal((1000, 4))  # 1000 % 3, 7 > 0
    out = torch.ones(5, 4)
    add_row_product_(out, torch.tensor(left, dtype=torch.float32),
                     torch.tensor(right, dtype=torch.float32), pieces=pieces)  # fmt: skip
    np.testing.assert_allclose(out.numpy(), 1 + left.T @ right, rtol=1e-4, atol=1e-3)


def test_batches_larger_than_the_check_slice_equal_the_definition():
    x, y = torch.randn(3 * CHECK_ROWS + 5, 6), torch.randint(0, 3, (3 * CHECK_ROWS + 5,))
    model = _mlp()
    got = compute_importance(model, TensorData(x, y, batch_size=2 * CHECK_ROWS + 1),
                             estimator="sample", fingerprint=False)  # fmt: skip
    _assert_equal(got, _definition(model, x, y))
    assert got.paths["0.weight"] == "factorised" and got.paths["1.weight"] == "hooks"


def _steps(monkeypatch):
    """Record the rows of every step the sample engine takes."""
    sizes, step = [], assd.importance.persample.engine.SampleEngine.step

    def recording(self, acc, inputs, targets):
        sizes.append(len(inputs))
        return step(self, acc, inputs, targets)

    monkeypatch.setattr(assd.importance.persample.engine.SampleEngine, "step", recording)
    return sizes


def test_table_batches_are_joined_into_larger_steps(monkeypatch):
    monkeypatch.setattr(assd.importance.estimators, "MERGE_ROWS", 40)
    sizes = _steps(monkeypatch)
    x, y = torch.randn(107, 6), torch.randint(0, 3, (107,))
    batches = [(x[:3], y[:3]), (x[3:50], y[3:50]), (x[50:60], y[50:60]), (x[60:], y[60:])]
    model = _mlp()
    got = compute_importance(model, batches, estimator="sample", fingerprint=False)
    _assert_equal(got, _definition(model, x, y))
    assert sizes == [50, 57]  # joined until 40 rows or more, then the rest
    assert got.n_samples == 107 and got.n_batches == 4 and got.batch_size == 3


def test_other_batches_are_stepped_one_by_one(monkeypatch):
    sizes = _steps(monkeypatch)
    model = nn.Sequential(nn.Flatten(), _mlp()).eval()
    x, y = torch.randn(30, 2, 3), torch.randint(0, 3, (30,))  # not rows of features: 3-D
    batches = [(x[i : i + 10], y[i : i + 10]) for i in range(0, 30, 10)]
    got = compute_importance(model, batches, estimator="sample", fingerprint=False)
    assert sizes == [10, 10, 10]
    _assert_equal(got, _definition(model, x, y))


def test_table_request_without_a_cache_hashes_no_data_key(monkeypatch, tmp_path):
    from assd.tabular import TrainConfig, train_table, unlearn_rows
    from assd.tabular.unlearn import trained_ids

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.random(300), "c": rng.choice(["a", "b"], 300)})
    frame["label"] = np.where(frame.x > 0.5, "high", "low")
    trained = train_table(frame, target="label", config=TrainConfig(epochs=2))
    forget = [str(i) for i in trained_ids(trained, frame)[:10]]
    cached, _ = unlearn_rows(trained, frame, forget, cache_folder=tmp_path)
    assert list(tmp_path.glob("importance-*.safetensors"))  # the cached run did use the key

    def refuse(*args):
        raise AssertionError("data key hashed without a cache")

    monkeypatch.setattr(assd.tabular.dampen, "data_key", refuse)
    new, report = unlearn_rows(trained, frame, forget)
    assert report["importance_cache"]["hit"] is False
    for a, b in zip(cached.model.parameters(), new.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_table_cache_key_is_the_order_free_digest_of_the_training_rows(tmp_path):
    """The check that the table is the training data already hashes its rows in id order;
    the sample estimator's cached importance (a sum over rows) is keyed by that digest, so
    a re-sorted copy of the table finds it, and an edited one does not."""
    from assd.tabular import TrainConfig, train_table, unlearn_rows
    from assd.tabular.unlearn import trained_ids

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(200)], "x": rng.random(200),
                          "c": rng.choice(["a", "b"], 200)})  # fmt: skip
    frame["label"] = np.where(frame.x > 0.5, "high", "low")
    trained = train_table(frame, target="label", id_column="id", config=TrainConfig(epochs=1))
    forget = [str(i) for i in trained_ids(trained, frame)[:8]]
    first = unlearn_rows(trained, frame, forget, cache_folder=tmp_path)[1]["importance_cache"]
    shuffled = frame.sample(frac=1.0, random_state=0)
    again = unlearn_rows(trained, shuffled, forget, cache_folder=tmp_path)[1]["importance_cache"]
    assert (first["hit"], again["hit"]) == (False, True) and again["path"] == first["path"]
    row = frame.id == trained_ids(trained, frame)[20]  # a training row, not forgotten
    edited = frame.assign(x=frame.x.where(~row, 0.123))
    other = unlearn_rows(trained, edited, forget, cache_folder=tmp_path)[1]["importance_cache"]
    assert other["hit"] is False and other["path"] != first["path"]
