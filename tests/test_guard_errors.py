"""The retain guard of error-correction requests: held-out rows that carry the forget rows'
error are not damage; the headline says when the guard changed a request; --no-guard is no
guard for every method."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import assd
from assd.cli import main
from assd.tabular import TrainConfig, train_table, unlearn_rows
from assd.tabular.report import unlearn_markdown
from assd.verify.suspects import chernoff_tail, suspect_rows, wrong_groups


def shop_table(n: int = 900, seed: int = 0) -> pd.DataFrame:
    """Label = x > 0.5 ("high"/"low"); shop "c" typed every label the wrong way round, in the
    training rows and in the held-out rows alike."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "x": rng.random(n),
                          "shop": rng.choice(list("abcde"), n)})  # fmt: skip
    truth = frame.x > 0.5
    wrong = frame.shop == "c"
    frame["label"] = np.where(truth ^ wrong, "high", "low")
    return frame


@pytest.fixture(scope="module")
def shop_model():
    frame = shop_table()
    model = train_table(frame, target="label", id_column="id", split="random",
                        config=TrainConfig(epochs=40, batch_size=32, lr=0.05, seed=0))  # fmt: skip
    train = model.task.encode(frame)
    forget = train.ids[(~train.test) & (frame.shop == "c").to_numpy()]
    return frame, model, forget


def test_wrong_groups_match_a_direct_computation():
    frame = shop_table(n=600, seed=3)
    onehot = pd.get_dummies(frame.shop).to_numpy(dtype=np.float32)
    x = torch.from_numpy(np.column_stack([frame.x.to_numpy(np.float32), onehot]))
    forget = (frame.shop == "c").to_numpy().copy()
    forget[np.flatnonzero(frame.shop == "a")[:3]] = True  # three stray rows of shop a
    groups = wrong_groups(x[forget], x[~forget])
    # direct: shop c's column (index 3) holds only forget rows; its complement and shop a's
    # column are mostly kept rows; the numeric column is not binary
    n_c, k, n = int((frame.shop == "c").sum()), int(forget.sum()), len(frame)
    assert chernoff_tail(n_c, n_c, k / n) == pytest.approx((k / n) ** n_c)
    assert [(g.column, g.value, g.n_forget, g.n_rows) for g in groups] == [(3, 1.0, n_c, n_c)]
    assert torch.equal(suspect_rows(x, groups), torch.tensor((frame.shop == "c").to_numpy()))
    known = torch.tensor([False] + [True] * onehot.shape[1])  # the one-hot columns, as told
    assert wrong_groups(x[forget], x[~forget], known=known) == groups


def test_random_rows_form_no_wrong_group():
    g = torch.Generator().manual_seed(0)
    x = F.one_hot(torch.randint(0, 20, (5000,), generator=g), 20).float()
    forget = torch.rand(5000, generator=g) < 0.1  # uniform errors / a privacy request
    assert wrong_groups(x[forget], x[~forget]) == []


def test_errors_guard_sets_aside_the_held_out_rows_of_the_wrong_group(shop_model):
    frame, model, forget = shop_model
    rows = model.task.encode(frame)
    held = rows.subset(rows.test)
    is_c = (frame.shop == "c").to_numpy()[rows.test]
    _, errors = unlearn_rows(model, frame, forget, reason="errors")
    _, privacy = unlearn_rows(model, frame, forget, reason="privacy")
    assert errors["guard"]["held_out_set_aside"] == int(is_c.sum()) > 0
    assert errors["guard"]["groups"] == [{"group": "shop=c", "forget_rows": len(forget),
                                          "training_rows": len(forget)}]  # fmt: skip
    assert privacy["guard"]["held_out_set_aside"] == 0 and privacy["guard"]["groups"] == []
    # the guard's held-out figures are the rows of the other shops, scored directly
    clean = held.subset(~is_c)
    with torch.no_grad():
        acc = float((model.model(clean.x).argmax(1) == clean.y).double().mean())
    test = errors["result"]["outcome"]["before"]["test"]
    assert test["n"] == len(clean) and test["accuracy"] == pytest.approx(acc, abs=1e-6)
    # against the wrong held-out labels the correction looks like damage: privacy backs off
    assert privacy["result"]["outcome"]["guard"]["changed"]["asked_set"] == "test"
    assert errors["result"]["outcome"]["guard"].get("changed") is None
    after = errors["accuracy"]
    assert after["forget"]["after"] < after["forget"]["before"] - 0.3  # the wrong rows let go
    assert errors["result"]["alpha"] < privacy["result"]["alpha"]
    line = f"{int(is_c.sum())} held-out and 0 retained row(s) likely carrying the same error"
    assert line in unlearn_markdown(errors) and "(shop=c)" in unlearn_markdown(errors)
    # the rows set aside are a set of their own in the report: shop c's held-out rows, scored
    # directly; with the watched rows they make up the report's whole "test" (none in privacy)
    aside = errors["accuracy"]["test (set aside by the guard)"]
    shop_c = held.subset(is_c)
    with torch.no_grad():
        acc_c = float((model.model(shop_c.x).argmax(1) == shop_c.y).double().mean())
    assert aside["n"] == len(shop_c) and aside["before"] == pytest.approx(acc_c, abs=1e-6)
    whole = errors["accuracy"]["test"]
    assert whole["n"] == aside["n"] + test["n"]
    right = [round(s["n"] * s[k]) for s, k in ((whole, "before"), (aside, "before"),
                                                (test, "accuracy"))]  # rows predicted right
    assert right[0] == right[1] + right[2]
    assert "test (set aside by the guard)" not in privacy["accuracy"]
    # only rows declared wrong are said to be scored against possibly wrong labels
    assert "(possibly the wrong ones)" in unlearn_markdown(errors)
    assert "(possibly the wrong ones)" not in unlearn_markdown(privacy)
    legend = "- (set aside by the guard): retained or held-out rows"  # only where there are such
    assert legend in unlearn_markdown(errors) and legend not in unlearn_markdown(privacy)
    assert f"test ({test['n']} rows): accuracy" in errors["result"]["outcome"]["verdict"]


def test_the_headline_says_when_the_guard_changed_a_request(shop_model):
    frame, model, forget = shop_model
    _, report = unlearn_rows(model, frame, forget, reason="privacy")
    change = report["result"]["outcome"]["guard"]["changed"]
    # the drop the request as asked would have cost, computed directly
    _, unguarded = unlearn_rows(model, frame, forget, guard=None)
    asked = unguarded["result"]["alpha"]
    assert change["asked_alpha"] == pytest.approx(asked)
    rows = model.task.encode(frame)
    held = rows.subset(rows.test)
    drop = unguarded["accuracy"]["test"]["before"] - unguarded["accuracy"]["test"]["after"]
    assert change["asked_drop"] == pytest.approx(drop, abs=1e-6) and drop > 0.01
    first = unlearn_markdown(report).splitlines()[0]
    assert first.startswith("# Unlearning report: The retain guard")
    assert f"{100 * drop:.2f} pp on 'test'" in first and len(held) > 0
    verdict = report["result"]["outcome"]["verdict"]
    assert verdict.startswith("The retain guard")
    assert not ("No weight changed" in verdict and "guard holds" in verdict)


def test_a_guard_that_stops_everything_never_says_nothing_changed_and_holds():
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    assd.train.fit(model, assd.TensorData(x, y, batch_size=50, shuffle=True), epochs=30,
                   lr=0.05, optimizer="adam")  # fmt: skip
    sets = {"retain": assd.TensorData(x[20:], y[20:])}
    result = assd.SSD(alpha=1e-9, dampening=1e-9, guard=0.0).unlearn(
        model, forget=assd.TensorData(x[:20], y[:20]), data=assd.TensorData(x, y), evaluate=sets)
    change = result.outcome.guard["changed"]
    verdict = result.outcome.verdict()
    if change["changed_nothing"]:
        assert verdict.startswith("The retain guard stopped")
        assert "No weight changed" not in verdict and "guard holds" not in verdict
    else:
        assert verdict.startswith("The retain guard weakened")
    with torch.no_grad():
        base = float((model(x[20:]).argmax(1) == y[20:]).double().mean())
    unguarded = assd.SSD(alpha=1e-9, dampening=1e-9).unlearn(
        model, forget=assd.TensorData(x[:20], y[:20]), data=assd.TensorData(x, y))
    with torch.no_grad():
        hit = float((unguarded.model(x[20:]).argmax(1) == y[20:]).double().mean())
    assert change["asked_drop"] == pytest.approx(base - hit, abs=1e-6) and base - hit > 0


def test_no_guard_reaches_assd_auto(shop_model, tmp_path):
    frame, model, forget = shop_model
    _, guarded = unlearn_rows(model, frame, forget, method="assd-auto")
    assert guarded["result"]["outcome"]["guard"] is not None
    _, free = unlearn_rows(model, frame, forget, method="assd-auto", guard=None)
    assert free["result"]["outcome"]["guard"] is None
    assert all(t["guard"] is None for t in free["result"]["outcome"]["tries"])
    # and through the command line
    csv, folder = tmp_path / "shops.csv", tmp_path / "m1"
    frame.to_csv(csv, index=False)
    model.save(folder)
    ids = tmp_path / "bad.txt"
    ids.write_text("\n".join(forget) + "\n")
    out = tmp_path / "m2"
    assert main(["unlearn", "--model", str(folder), "--data", str(csv), "--forget", str(ids),
                 "--out", str(out), "--method", "assd-auto", "--no-guard", "--no-cache",
                 "--over-budget", "apply"]) == 0  # no guard: the drift budget counts every row
    report = json.loads((out / "report.json").read_text())
    assert report["result"]["outcome"]["guard"] is None and report["guard"]["limit"] is None
    assert all(t["guard"] is None for t in report["result"]["outcome"]["tries"])


def test_report_figures_from_counts_match_scikit_learn():
    from assd.tabular.evaluate import summarize
    from assd.tabular.scoring import summary_from_counts

    rng = np.random.default_rng(1)
    for k in (2, 3, 5):
        target, pred = rng.integers(0, k, 300), rng.integers(0, k, 300)
        target[target == k - 1] = 0  # a class no row has: recall NaN, left out of the means
        counts = torch.bincount(torch.from_numpy(target * k + pred), minlength=k * k)
        names = [f"c{i}" for i in range(k)]
        ours = summary_from_counts(counts.reshape(k, k), names, majority=1)
        theirs = summarize(target, pred, names, majority_class=1)
        for key in ("balanced_accuracy", "macro_f1", "majority_baseline", "beats_baseline"):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-12)
        assert ours["majority_class"] == theirs["majority_class"]
        for name in names:
            a, b = ours["recall"][name], theirs["recall"][name]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_errors_everywhere_puts_the_groups_errors_in_the_held_out_rows_too():
    from assd.experiments.errors import ErrorsConfig, load_errors_data, run_one

    frame = shop_table(n=700, seed=2)
    frame["label"] = np.where(frame.x > 0.5, "high", "low")  # clean labels: errors injected
    frame["shop"] = np.array(list("abcde"))[np.arange(700) % 5]  # 140 rows each: 20 % = one
    config = ErrorsConfig(target="label", group_column="shop", everywhere=True, rates=[0.2],
                          id_column="id",
                          kinds=["group"], n_train=10_000, split="random",
                          training={"epochs": 30, "batch_size": 32})  # fmt: skip
    data = load_errors_data(config, frame)
    cache: dict = {}
    cell = {"model": "mlp", "kind": "group", "rate": 0.2, "seed": 0}
    mistake = run_one({**cell, "method": "mistake"}, data, config, cache)
    ctx = cache["context"]
    hit = np.isin(data.test_groups, mistake["groups"])
    # the guard sees wrong labels on exactly the held-out rows of the mislabelled shops...
    assert np.array_equal((ctx.held_out.y != data.test.y).numpy(), hit) and hit.any()
    # ...and every model is scored on the clean ones
    with torch.no_grad():
        clean = float((ctx.model(data.test.x).argmax(1) == data.test.y).double().mean())
    assert mistake["test"] == pytest.approx(clean, abs=1e-6)
    guarded = run_one({**cell, "method": "assd:guard=0.01"}, data, config, cache)
    assert guarded["guard_set_aside"] == int(hit.sum())
    assert guarded["set_aside_precision"] == 1.0 and guarded["set_aside_recall"] == 1.0


def test_held_out_ids_named_in_the_forget_file_are_set_aside(shop_model):
    frame, model, forget = shop_model
    rows = model.task.encode(frame)
    held_a = rows.ids[rows.test & (frame.shop == "a").to_numpy()][:7]
    _, report = unlearn_rows(model, frame, [*forget, *held_a], reason="errors")
    is_c = (frame.shop == "c").to_numpy()[rows.test]
    assert report["n_forget"] == len(forget)  # held-out ids are not training rows to forget
    assert report["guard"]["held_out_declared"] == 7
    assert report["guard"]["held_out_set_aside"] == int(is_c.sum()) + 7
    assert report["result"]["outcome"]["before"]["test"]["n"] == len(is_c) - int(is_c.sum()) - 7


def test_ids_digest_is_the_sha256_of_each_id_and_a_nul():
    import hashlib

    from assd.tabular.task import ids_digest

    for ids in ([], ["a"], ["1", "é", "x\0y", 3], [str(i) for i in range(500)]):
        direct = hashlib.sha256(b"".join(str(i).encode() + b"\0" for i in ids)).hexdigest()
        assert ids_digest(ids) == direct


def test_category_codes_convert_each_distinct_value_once_with_the_same_result():
    from assd.data.preprocess import MISSING, _column_codes, _level_codes, _strings

    frame = pd.DataFrame({"a": ["x", None, "y", "z", "x", "", "NA"],
                          "b": [1, 2, None, 1, 3, 2, 1],
                          "c": [1.5, np.nan, 2.0, 1.5, 3.0, 2.0, 1.0]})  # fmt: skip
    frame["s"] = frame["a"].astype("string")
    levels = ["x", "y", "1", "2.0", "1.5", "nan", MISSING]
    for col in frame.columns:  # the row-by-row definition, as fitting uses it
        direct = _level_codes(_strings(frame, col).to_numpy(), levels)
        assert np.array_equal(_column_codes(_strings(frame, col), levels), direct), col
