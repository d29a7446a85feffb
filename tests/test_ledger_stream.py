"""Requests in a stream: re-checks of earlier requests, rows that come back, the drift
budget (stop / apply / queue), queued requests applied together, and retraining."""

import json
import logging

import numpy as np
import pytest
import torch

from assd import Ledger
from assd.batches import TensorData
from assd.cli import main
from assd.metrics import predict
from assd.tabular import TabularModel, TrainConfig, train_table, trained_ids
from assd.tabular.model import train_mlp
from assd.tabular.recheck import recheck
from assd.tabular.retrain import retrain_model
from assd.tabular.stream import OverBudget, unlearn_request
from assd.tabular.task import Rows


def make_table(n=160, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": [f"r{i:04d}" for i in range(n)], "x": rng.random(n),
                          "g": rng.choice(list("abcd"), n)})  # fmt: skip
    frame["label"] = np.where((frame.x > 0.5) ^ (frame.g == "a"), "hi", "lo")
    return frame


@pytest.fixture(scope="module")
def base():
    frame = make_table(160)
    model = train_table(frame, target="label", id_column="id",
                        config=TrainConfig(epochs=4, batch_size=32))  # fmt: skip
    return frame, model, list(trained_ids(model, frame))


def correct(model, rows) -> np.ndarray:
    pred, y = predict(model, TensorData(rows.x, rows.y))
    return (pred == y).numpy()


def test_recheck_finds_rows_that_came_back_by_their_own_evidence():
    model = torch.nn.Linear(2, 2, bias=False)
    model.weight.data.copy_(torch.eye(2))  # predicts the larger feature
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    rows = Rows(x, torch.tensor([0, 1, 0, 0]), np.array(["a", "b", "c", "d"], dtype=object),
                np.zeros(4, dtype=bool))  # fmt: skip
    ledger = Ledger.start(model)
    # request: rows c, a, b, d; correct before 1,1,1,1; after 0,0,1,0 (c, a, d forgotten)
    ledger.append("forget", weights_before=ledger.weights, weights_after=ledger.weights,
                  rows=ledger.rows(["c", "a", "b", "d"], hashed=True),
                  evidence={"correct_before": "1111", "correct_after": "0010"})  # fmt: skip
    [check] = recheck(ledger, model, rows)
    # now: a right, b right, c right, d wrong (label 0, predicted 1): a and c came back
    assert sorted(check["came_back_ids"]) == ["a", "c"] and check["came_back"] == 2
    assert check["forgotten_then"] == 3 and not check["holds"]
    assert check["forget_accuracy_then"] == 0.25 and check["forget_accuracy_now"] == 0.75
    assert sorted(check["came_back_keys"]) == sorted(ledger.hash_ids(["a", "c"]))


def test_rows_that_came_back_are_reported_and_forgotten_again(base):
    frame, model, ids = base
    rows = model.task.encode(frame)
    right = [i for i, ok in zip(rows.ids, correct(model.model, rows), strict=True)
             if ok and i in set(ids)][:4]  # fmt: skip
    tab = TabularModel(model.model, model.task, model.architecture, dict(model.extra))
    ledger = Ledger.start(model.model, data={"n_train": len(ids)})
    ledger.append("forget", weights_before=ledger.weights, weights_after=ledger.weights,
                  rows=ledger.rows(right), evidence={"correct_before": "1111",
                                                     "correct_after": "0000"})  # fmt: skip
    tab.ledger, tab.extra["ledger"] = ledger, {"head": ledger.head}
    new_ids = [i for i in ids if i not in set(right)][:3]
    plain, report = unlearn_request(tab, frame, new_ids, over_budget="apply")
    now = dict(zip(rows.ids, correct(plain.model, rows), strict=True))
    assert report["came_back"] == [i for i in right if now[i]] and report["came_back"]
    again, report = unlearn_request(tab, frame, new_ids, over_budget="apply", reforget=True)
    entry = again.ledger.entries[-1]
    assert entry["rows"]["ids"] == new_ids + [i for i in right if now[i]]
    assert report["reforgotten"] == [i for i in right if now[i]]


def test_missing_rows_are_warned_about(base, caplog):
    frame, model, ids = base
    one, _ = unlearn_request(model, frame, ids[:4], over_budget="apply")
    short = frame[~frame.id.isin(ids[:2] + ids[10:13])]  # 2 forgotten rows and 3 others gone
    with caplog.at_level(logging.WARNING, logger="assd"):
        unlearn_request(one, short, ids[20:22], over_budget="apply")
    text = caplog.text
    assert "3 row(s) are missing" in text and "2 row(s) that earlier requests forgot" in text


def test_over_the_budget_is_announced_before_anything_is_applied(base):
    frame, model, ids = base
    with pytest.raises(OverBudget, match="retrain due: this request would take") as caught:
        unlearn_request(model, frame, ids[:4], drift_budget=-1.0)
    assert caught.value.ids == ids[:4]
    new, report = unlearn_request(model, frame, ids[:4], drift_budget=-1.0, over_budget="apply")
    entry = new.ledger.entries[-1]
    assert entry["retrain_due"] and report["drift"]["over"]
    within, _ = unlearn_request(model, frame, ids[:4], drift_budget=100.0)
    assert not within.ledger.entries[-1]["retrain_due"]


def test_cli_queue_then_apply_together(base, tmp_path):
    frame, model, ids = base
    frame.to_csv(tmp_path / "t.csv", index=False)
    model.save(tmp_path / "m0")
    for k in range(2):
        (tmp_path / f"f{k}.txt").write_text("\n".join(ids[4 * k : 4 * k + 4]))
    common = ["unlearn", "--model", str(tmp_path / "m0"), "--data", str(tmp_path / "t.csv")]
    queue = str(tmp_path / "q.json")
    assert main([*common, "--forget", str(tmp_path / "f0.txt"), "--out", str(tmp_path / "x"),
                 "--drift-budget", "-1", "--over-budget", "queue", "--queue", queue]) == 0
    assert not (tmp_path / "x").exists()
    assert main([*common, "--forget", str(tmp_path / "f0.txt"), "--out", str(tmp_path / "x"),
                 "--drift-budget", "-1"]) == 2  # the default: stop, nothing written
    assert not (tmp_path / "x").exists()
    assert len(json.loads((tmp_path / "q.json").read_text())["requests"]) == 1
    assert main(["unlearn", "--model", str(tmp_path / "m0"), "--forget", str(tmp_path / "f1.txt"),
                 "--queue", queue]) == 2  # no --data: ids could not be read exactly
    assert main([*common, "--forget", str(tmp_path / "f1.txt"), "--queue", queue]) == 0
    state = json.loads((tmp_path / "q.json").read_text())
    assert [r["ids"] for r in state["requests"]] == [ids[:4], ids[4:8]]
    assert main([*common, "--apply-queue", queue, "--out", str(tmp_path / "m1")]) == 0
    entry = Ledger.read(tmp_path / "m1").entries[-1]
    assert entry["rows"]["ids"] == ids[:8] and len(entry["batched"]) == 2
    (tmp_path / "user.json").write_text("{}")  # a file assd did not write is never a queue
    assert main([*common, "--forget", str(tmp_path / "f1.txt"), "--queue",
                 str(tmp_path / "user.json")]) == 2  # fmt: skip
    assert (tmp_path / "user.json").read_text() == "{}"


def test_retrain_leaves_out_every_forgotten_row_and_resets_the_drift(base, tmp_path):
    frame, model, ids = base
    one, _ = unlearn_request(model, frame, ids[:5], over_budget="apply")
    two, _ = unlearn_request(one, frame, ids[5:9], over_budget="apply", hash_ids=True)
    fresh, report = retrain_model(two, frame)
    keep = frame.set_index("id").loc[ids[9:]].reset_index()  # by hand: the rows not forgotten
    rows = model.task.encode(keep)
    config = model.config()
    direct = train_mlp(rows.x, rows.y, n_classes=2, config=config)
    for name, tensor in direct.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[name], tensor), name
    assert report["n_excluded"] == 9 and report["n_train"] == len(ids) - 9
    entry = fresh.ledger.entries[-1]
    assert entry["kind"] == "retrain" and entry["parent_head"] == two.ledger.head
    assert set(entry["drift"].values()) == {0.0}
    three, report = unlearn_request(fresh, frame, ids[9:12], over_budget="apply")
    assert report["ledger"]["excluded"] == 9
    checks = report["ledger"]["reverified"]  # nothing "comes back" into a model never shown it
    assert [c["retrained_without"] for c in checks] == [True, True]
    assert [c["came_back"] for c in checks] == [0, 0] and report["came_back"] == []
    assert three.ledger.entries[-1]["drift"] == three.ledger.entries[-1]["drift_step"]
    fresh.save(tmp_path / "r")
    assert main(["history", "--model", str(tmp_path / "r")]) == 0
