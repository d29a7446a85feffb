"""The practitioner path through the CLI: train -> unlearn -> evaluate on a generated CSV."""

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import assd
from assd.batches import TensorData
from assd.cli import main
from assd.data import Preprocessor, split_rows
from assd.metrics import accuracy
from assd.tabular import TabularModel


def make_orders(n=600, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "order_id": [f"o{i:04d}" for i in range(n)],
            "when": pd.date_range("2023-01-01", periods=n, freq="6h").astype(str),
            "qty": rng.integers(1, 50, n),
            "price": rng.gamma(2.0, 20.0, n).round(2),
            "region": rng.choice(["north", "south", "east", "west", "isles"], n),
        }
    )
    score = frame.qty / 50 + (frame.region == "isles") - frame.price / 200
    frame["status"] = np.where(score > 0.6, "late", np.where(score > 0.2, "on_time", "early"))
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # time not in order


@pytest.fixture
def trained(tmp_path):
    csv = tmp_path / "orders.csv"
    make_orders().to_csv(csv, index=False)
    m1 = tmp_path / "m1"
    args = ["train", "--data", str(csv), "--target", "status", "--out", str(m1),
            "--id-column", "order_id", "--split", "time:when", "--epochs", "8",
            "--batch-size", "64", "--lr", "0.05"]  # fmt: skip
    assert main(args) == 0
    return csv, m1


def _rows(csv, m1, which):
    tab = TabularModel.load(m1)
    frame = pd.read_csv(csv)
    rows = tab.task.encode(frame)
    return tab, frame, rows.subset(rows.test if which == "test" else ~rows.test)


def test_train_writes_json_preprocessing_fitted_on_training_rows_only(trained):
    csv, m1 = trained
    names = {p.name for p in m1.iterdir() if not p.name.startswith("importance-")}
    assert names == {"model.safetensors", "model.json", "task.json", ".assd-output"}
    # and the pass over the training rows that the first request reads (assd.tabular.precompute)
    assert len(list(m1.glob("importance-*.safetensors"))) == 1
    frame = pd.read_csv(csv)
    test = split_rows(frame, "time:when", test_share=0.2)
    assert test.sum() == 120 and (frame.when[test].min() > frame.when[~test].max())
    tab = TabularModel.load(m1)
    prep = tab.task.preprocessor
    again = Preprocessor.fit(
        frame[~test], numeric=prep.numeric, categorical=prep.categorical, max_levels=prep.max_levels
    )
    assert again.to_dict() == prep.to_dict()
    assert prep.numeric == ["qty", "price"] and prep.categorical == ["region"]


def test_unlearn_then_evaluate_round_trip(trained, tmp_path, capsys, numpy_alpha,
                                          retain_importance):
    csv, m1 = trained
    tab, _, train = _rows(csv, m1, "train")
    forget_ids = train.ids[:12].tolist()
    forget_file = tmp_path / "bad_rows.txt"
    forget_file.write_text("# rows typed in wrongly\n" + "\n".join(forget_ids) + "\n")
    before = {name: (m1 / name).read_bytes() for name in ("model.safetensors", "model.json")}
    m2 = tmp_path / "m2"
    args = ["unlearn", "--model", str(m1), "--data", str(csv), "--forget", str(forget_file),
            "--out", str(m2)]  # fmt: skip
    assert main(args) == 0
    assert {name: (m1 / name).read_bytes() for name in before} == before  # input untouched
    assert len(list(m1.glob("importance-*.safetensors"))) == 1  # cached beside the model
    report = json.loads((m2 / "report.json").read_text())
    assert report["n_forget"] == 12 and report["method"]["name"] == "assd"
    assert report["importance_cache"]["hit"]  # made by assd train
    # the report's time is the whole request, its parts (encoding counted once) within it
    assert sum(report["timings"].values()) <= report["seconds"] + 0.002
    # alpha by its definition: I_D of the training rows, I_Df of the 12, I_retain derived
    is_forget = np.isin(train.ids, forget_ids)
    whole, f = (assd.compute_importance(tab.model, TensorData(train.x[rows], train.y[rows]),
                                        fingerprint=False).tensors
                for rows in (np.ones_like(is_forget), is_forget))  # fmt: skip
    n = len(train.ids)
    alpha = numpy_alpha(f, retain_importance(whole, f, n, 12), 12, n)
    assert report["result"]["alpha"] == pytest.approx(alpha, rel=1e-5)
    assert (m2 / "report.md").read_text().startswith("# Unlearning report")
    new = TabularModel.load(m2)
    assert new.task.to_dict() == tab.task.to_dict()  # the same preprocessing goes along
    _, _, test = _rows(csv, m1, "test")
    data = TensorData(test.x, test.y)
    assert report["accuracy"]["test"]["before"] == pytest.approx(accuracy(tab.model, data))
    assert report["accuracy"]["test"]["after"] == pytest.approx(accuracy(new.model, data))
    assert report["accuracy"]["test"]["before"] == pytest.approx(
        tab.extra["metrics"]["test"]["accuracy"]  # preprocessing re-applied identically
    )
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(m2), "--data", str(csv), "--rows", "test",
                 "--json", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["accuracy"] == pytest.approx(accuracy(new.model, data))
    predicted = new.model(test.x).argmax(1)
    expected = torch.zeros(3, 3, dtype=torch.long)
    for t, p in zip(test.y.tolist(), predicted.tolist(), strict=True):
        expected[t, p] += 1
    assert result["confusion"] == expected.tolist()
    assert "confusion (rows: true, columns: predicted)" in capsys.readouterr().out


def test_a_later_request_reuses_the_cached_importance(trained, tmp_path):
    csv, m1 = trained
    _, _, train = _rows(csv, m1, "train")
    copy = tmp_path / "no-entry"  # as a model trained with --no-importance: no entry in the folder
    shutil.copytree(m1, copy)
    (made,) = copy.glob("importance-*.safetensors")
    made.unlink()
    for name, ids in (("a", train.ids[:5]), ("b", train.ids[5:9])):
        (tmp_path / f"{name}.txt").write_text("\n".join(ids))
        args = ["unlearn", "--model", str(copy), "--data", str(csv), "--forget",
                str(tmp_path / f"{name}.txt"), "--out", str(tmp_path / f"out-{name}")]  # fmt: skip
        assert main(args) == 0
    first = json.loads((tmp_path / "out-a" / "report.json").read_text())["importance_cache"]
    second = json.loads((tmp_path / "out-b" / "report.json").read_text())["importance_cache"]
    assert (first["hit"], second["hit"]) == (False, True) and first["path"] == second["path"]
    assert first["saved"] and first["path"] == str(made)  # the name assd train had given it


def test_training_baselines_and_an_unwritable_cache(trained, tmp_path, caplog):
    csv, m1 = trained
    _, _, train = _rows(csv, m1, "train")
    (tmp_path / "f.txt").write_text("\n".join(train.ids[:10]))
    (tmp_path / "blocker").write_text("a file where a folder should be")
    args = ["unlearn", "--model", str(m1), "--data", str(csv), "--forget",
            str(tmp_path / "f.txt"), "--out", str(tmp_path / "ft"), "--method", "finetune",
            "--cache-dir", str(tmp_path / "blocker" / "cache")]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "ft" / "report.json").read_text())
    assert report["method"]["options"]["epochs"] == 1  # the error protocol's fine-tune
    args[-6:] = ["--out", str(tmp_path / "ssd"), "--method", "ssd", "--cache-dir",
                 str(tmp_path / "blocker" / "cache")]  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="assd"):
        assert main(args) == 0  # the cache cannot be written: a warning, not a failure
    blocked = tmp_path / "blocker" / "cache"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith(f"cannot create the cache folder {blocked} (")
    assert messages[0].endswith("); not caching")
    assert messages[1].startswith(f"cannot cache the importance at {blocked}/importance-")
    assert messages[1].endswith("); going on without")


def test_bad_requests_fail_with_one_line_and_exit_code_2(trained, tmp_path, capsys):
    csv, m1 = trained
    (tmp_path / "f.txt").write_text("o0001\nnot-a-row\n")
    args = ["unlearn", "--model", str(m1), "--data", str(csv), "--forget",
            str(tmp_path / "f.txt"), "--out", str(tmp_path / "x")]  # fmt: skip
    assert main(args) == 2
    assert "not rows of the data" in capsys.readouterr().err
    train_again = ["train", "--data", str(csv), "--target", "status", "--out", str(m1)]
    assert main(train_again) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(csv)]) == 2
