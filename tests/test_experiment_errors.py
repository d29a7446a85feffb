"""`assd experiment errors`: statistics against SciPy, a tiny run, and resuming."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from assd.cli import main
from assd.experiments.errors import parse_method
from assd.experiments.errors_report import summarize

TEST = {"mistake": [0.50, 0.52, 0.49], "assd": [0.52, 0.53, 0.50], "retrain": [0.55, 0.54, 0.53]}
SMALL_GAP = {"mistake": [0.50, 0.52], "assd": [0.51, 0.49], "retrain": [0.503, 0.52]}


def _records(table=TEST):
    return [
        {"key": {"model": "mlp", "kind": "uniform", "rate": 0.05, "seed": s, "method": m},
         "test": acc, "train_clean": acc + 0.1, "n_test": 1000, "affected_test": None}
        for m, values in table.items()
        for s, acc in enumerate(values)
    ]  # fmt: skip


def test_statistics_match_scipy_and_the_stated_formulas():
    rows = {r["method"]: r for r in summarize(_records())}
    assd, base, goal = (np.asarray(TEST[m]) for m in ("assd", "mistake", "retrain"))
    row = rows["assd"]
    assert row["test"][0] == pytest.approx(assd.mean())
    assert row["test"][1] == pytest.approx(assd.std(ddof=1))
    assert row["gain_pp"] == pytest.approx(100 * (assd - base).mean())
    assert row["p_value"] == pytest.approx(stats.ttest_rel(assd, base).pvalue)
    # "additional correct classifications" as DESIGN states it: n_test (acc - base) / base
    assert row["additional_correct"] == pytest.approx((1000 * (assd - base) / base).mean())
    gap = (assd.mean() - base.mean()) / (goal.mean() - base.mean())
    assert row["gap_closed"] == pytest.approx(gap)
    assert rows["retrain"]["gap_closed"] == pytest.approx(1.0)
    assert math.isnan(rows["mistake"]["p_value"])  # identical samples: no test
    small = {r["method"]: r for r in summarize(_records(SMALL_GAP))}
    assert math.isnan(small["assd"]["gap_closed"])  # retrain gains only 0.15 pp: no ratio


def test_method_specs():
    assert parse_method("ssd:alpha=10") == ("ssd", {"alpha": 10})
    assert parse_method("FineTune:epochs=1,lr=0.1") == ("finetune", {"epochs": 1, "lr": 0.1})
    with pytest.raises(ValueError, match="key=value"):
        parse_method("assd:full")


def test_tiny_run_writes_results_table_plots_and_resumes(tmp_path, capsys, flights_like):
    data, out = tmp_path / "flights.csv", tmp_path / "run"
    flights_like(data, n=700)
    args = ["experiment", "errors", "--out", str(out), "--data", str(data), "--rates", "5",
            "--seeds", "2", "--kinds", "uniform,group", "--n-train", "300", "--epochs", "2",
            "--methods", "mistake assd", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2 * 2 * 2  # kinds x seeds x methods
    assert {r["key"]["method"] for r in records} == {"mistake", "assd"}
    assert all(r["n_forget"] == 15 and r["n_train"] == 300 for r in records)
    group = [r for r in records if r["key"]["kind"] == "group"]
    assert all(r["groups"] and r["affected_test"] is not None for r in group)
    table = (out / "table.md").read_text()
    assert "### mlp, uniform errors" in table and "| 5 % | assd |" in table
    assert len(list((out / "figures").glob("errors-mlp-*-5pct.png"))) == 2
    assert main(args) == 0  # a re-run reuses every finished cell
    assert (out / "results.jsonl").read_text().splitlines() == lines
    changed = [*args[:-1], "--n-train", "200", "--no-progress"]
    assert main(changed) == 2  # other settings into the same results file are refused
    assert "other settings" in capsys.readouterr().err


def test_own_table_with_discovery(tmp_path):
    """The benchmark on a table that is not flights: other column names, random split,
    group errors on a named column, discovered rows against the injected ones."""
    rng = np.random.default_rng(0)
    n = 900
    sensors = rng.normal(size=(n, 3))
    frame = pd.DataFrame({f"gauge_{i}": sensors[:, i] for i in range(3)})
    frame["plant"] = rng.choice([f"p{i}" for i in range(10)], n)
    frame["grade"] = np.asarray(["A", "B", "C"])[
        np.stack([sensors[:, 0], sensors[:, 1], -sensors[:, 0] - sensors[:, 1]], 1).argmax(1)
    ]
    data, out = tmp_path / "plants.csv", tmp_path / "run"
    frame.to_csv(data, index=False)
    args = ["experiment", "errors", "--out", str(out), "--data", str(data), "--target", "grade",
            "--group-column", "plant", "--split", "random", "--rates", "10", "--seeds", "1",
            "--n-train", "600", "--epochs", "15", "--batch-size", "64", "--discover",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 6  # kinds x methods (mistake, found: x3 with assd-auto, true x2)
    # the majority baseline, by hand: seeded 20 % test rows, training rows' commonest class
    test = np.zeros(n, dtype=bool)
    test[np.random.default_rng(0).permutation(n)[: round(0.2 * n)]] = True
    majority = frame.grade[~test].value_counts().idxmax()
    assert all(r["majority_baseline"] == pytest.approx((frame.grade[test] == majority).mean())
               for r in records)  # fmt: skip
    found = next(r for r in records if r["key"] == {
        "model": "mlp", "kind": "group", "rate": 0.1, "seed": 0, "method": "found:assd"})
    assert found["found_precision"] >= 0.6 and found["found_recall"] >= 0.6
    assert set(found["found_groups"]) <= set(found["groups"])
    table = (out / "table.md").read_text()
    assert "bal. acc" in table and "Majority-class baseline" in table
    assert "| 10 % | discovered → assd |" in table and "| 10 % | true ids → retrain |" in table


def test_own_table_bad_inputs_are_explained(tmp_path, capsys):
    frame = pd.DataFrame({"gauge": np.arange(50.0), "grade": ["A", "B"] * 25})
    data = tmp_path / "t.csv"
    frame.to_csv(data, index=False)
    base = ["experiment", "errors", "--out", str(tmp_path / "run"), "--data", str(data)]
    assert main([*base, "--target", "grade"]) == 2  # group errors need a group column
    assert "--group-column" in capsys.readouterr().err
    assert main([*base, "--target", "grade", "--group-column", "plant"]) == 2
    assert "no group column 'plant'" in capsys.readouterr().err
    assert main([*base, "--split", "random"]) == 2  # without --target: the flights format
    assert "need --target" in capsys.readouterr().err
    assert main([*base, "--target", "grade", "--kinds", "uniform", "--split", "none"]) == 2
    assert "no test rows" in capsys.readouterr().err
