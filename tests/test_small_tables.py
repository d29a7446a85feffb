"""Defaults that fit the table, checks of a new table, and reports beyond accuracy."""

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score

from assd.cli import main
from assd.tabular import TrainConfig, classify, train_table, unlearn_rows
from assd.tabular.defaults import MIN_STEPS, fit_schedule
from assd.tabular.report import cache_line, time_line, unlearn_markdown


def _table(n=300, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"income": rng.gamma(2, 20, n).round(2), "tier": rng.integers(1, 5, n)})
    frame["label"] = np.where(frame.income + 15 * (frame.tier == 3) > 45, "yes", "no")
    return frame


@pytest.mark.parametrize("n", [40, 142, 455, 3000, 20_480, 262_000])
def test_schedule_rule_as_documented(n):
    batch, epochs = fit_schedule(n)
    steps_per_epoch = math.ceil(n / batch)
    # batch: 1024 halved while an epoch has < 20 batches, never below 32
    assert batch in (32, 64, 128, 256, 512, 1024)
    assert steps_per_epoch >= 20 or batch == 32
    assert batch == 1024 or math.ceil(n / (2 * batch)) < 20
    # epochs: 25 raised until >= 500 steps, capped at 200
    assert 25 <= epochs <= 200
    assert steps_per_epoch * epochs >= 500 or epochs == 200
    assert epochs == 25 or steps_per_epoch * (epochs - 1) < 500
    if n >= 20_480:
        assert (batch, epochs) == (1024, 25)  # the paper's setup on large tables
    assert fit_schedule(n, batch_size=1024, epochs=25) == (1024, 25)  # explicit wins


def test_small_table_gets_a_fitted_schedule_and_the_paper_setup_stays_reachable(caplog):
    frame = _table()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="assd"):
        auto = TrainConfig(batch_size=None, epochs=None)
        fitted = train_table(frame, target="label", config=auto)
    assert (fitted.config().batch_size, fitted.config().epochs) == fit_schedule(240)
    assert not [r for r in caplog.records if "optimizer steps" in r.message]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="assd"):
        paper = train_table(frame, target="label", config=TrainConfig(batch_size=1024, epochs=25))
    assert (paper.config().batch_size, paper.config().epochs) == (1024, 25)
    steps = [r.getMessage() for r in caplog.records if "optimizer steps" in r.getMessage()]
    assert steps == [
        "the model trains only 25 optimizer steps (240 rows in batches of 1024, 25 epochs); "
        f"with fewer than {MIN_STEPS} it may not learn the table, and unlearning then has "
        "little to change. Lower --batch-size or raise --epochs (or leave both out: they "
        "then fit the table)."
    ]
    # the fitted schedule learns the table; one step per epoch does not beat the baseline
    assert fitted.extra["metrics"]["test"]["beats_baseline"]
    assert fitted.extra["metrics"]["train"]["balanced_accuracy"] > (
        paper.extra["metrics"]["train"]["balanced_accuracy"]
    )


def test_continuous_target_is_refused_and_whole_number_codes_get_a_hint(caplog):
    frame = _table()
    frame["price"] = np.random.default_rng(1).normal(7, 2, len(frame)).round(2)
    with pytest.raises(ValueError, match=r"the target 'price' looks continuous \(\d+ distinct"):
        train_table(frame, target="price", config=TrainConfig(epochs=1))
    frame["rounded"] = frame.price.round()  # whole numbers: classes, not refused
    frame = frame.drop(columns="price")
    rounded = train_table(frame, target="rounded", config=TrainConfig(epochs=1, batch_size=64))
    assert len(rounded.task.class_names) == frame.rounded.nunique()
    frame = frame.drop(columns="rounded")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="assd"):
        train_table(frame, target="label", config=TrainConfig(epochs=1, batch_size=64))
    hints = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hint:")]
    assert hints == [
        "hint: column 'tier' holds only 4 distinct whole numbers; if they are codes of "
        "categories rather than amounts, pass --categorical tier (Python: "
        "categorical=['tier']) so that each code gets its own input."
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="assd"):
        train_table(frame, target="label", categorical=["tier"], max_levels=2,
                    config=TrainConfig(epochs=1, batch_size=64))  # fmt: skip
    hints = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hint:")]
    assert hints == [
        "hint: column 'tier' has 4 levels; only the 2 most frequent get their own input and "
        "the rest share one 'other' input, where errors in them cannot be told apart. Raise "
        "--max-levels to keep more."
    ]


def test_classify_metrics_equal_scikit_learn_on_a_hand_made_confusion():
    # 3 classes; a "model" that returns one-hot logits of fixed predictions
    truth = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    pred = torch.tensor([0, 0, 0, 0, 1, 2, 1, 0, 0, 0])
    model = torch.nn.Embedding(10, 3)
    model.weight.data = torch.nn.functional.one_hot(pred, 3).float()
    report = classify(model, torch.arange(10), truth, class_names=["a", "b", "c"])
    assert report["confusion"] == [[4, 1, 1], [2, 1, 0], [1, 0, 0]]
    assert report["accuracy"] == pytest.approx(0.5)
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, pred))
    assert report["balanced_accuracy"] == pytest.approx((4 / 6 + 1 / 3 + 0) / 3)
    assert report["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    recall = recall_score(truth, pred, average=None)
    assert list(report["recall"].values()) == pytest.approx(list(recall))
    assert report["majority_class"] == "a" and report["majority_baseline"] == pytest.approx(0.6)
    assert report["beats_baseline"] is False  # 0.5 < always-"a" 0.6


def test_unlearn_report_has_metrics_a_flag_times_that_add_up_and_a_legend(tmp_path):
    frame = _table(n=400)
    trained = train_table(frame, target="label", config=TrainConfig(batch_size=None, epochs=None))
    _, report = unlearn_rows(trained, frame, [str(i) for i in range(0, 300, 7)])
    test = report["metrics"]["test"]["before"]
    assert test["majority_class"] == "no" or test["majority_class"] == "yes"
    text = unlearn_markdown(report)
    total = report["seconds"]
    parts = [float(p.split()[-2]) for p in text.split("- time: ")[1].split(";")[0].split("=")[1]
             .split("+")]  # fmt: skip
    assert sum(parts) == pytest.approx(total, abs=0.011 * len(parts))
    assert "## Beyond accuracy" in text and "## What the figures mean" in text
    assert "None" not in text
    flagged = json.loads(json.dumps(report))
    flagged["metrics"]["test"]["after"]["beats_baseline"] = False
    assert "**Not above the majority-class baseline after unlearning:** test." in (
        unlearn_markdown(flagged)
    )
    # the forget rows falling below it is what was asked: their column says so, no alarm
    flagged["metrics"]["test"]["after"]["beats_baseline"] = True
    flagged["metrics"]["forget"]["after"]["beats_baseline"] = False
    text = unlearn_markdown(flagged)
    assert "Not above the majority-class baseline" not in text
    forget_row = next(line for line in text.splitlines() if line.startswith("| forget |")
                      and "**no**" in line)  # fmt: skip
    assert forget_row.split("|")[-2].strip() == "**no**"


def test_time_and_cache_lines():
    cache = {"path": None, "hit": False, "saved": False, "seconds": 1.4}
    report = {"seconds": 1.55, "timings": {"encode": 0.01, "unlearn": 1.51},
              "result": {"seconds": 0.03}, "importance_cache": cache}  # fmt: skip
    assert time_line(report) == (
        "- time: 1.55 s = encode 0.01 s + unlearn 1.51 s + other 0.03 s; unlearn includes "
        "computing the training-data importance (1.40 s) and the method's own steps (0.03 s)"
    )
    assert cache_line(report["importance_cache"]) == (
        "- training-data importance: computed, not cached (no cache folder) in 1.40 s"
    )
    hit = {"path": "m/imp.safetensors", "hit": True, "saved": False, "seconds": 0.2}
    assert cache_line(hit) == "- training-data importance: reused from m/imp.safetensors in 0.20 s"


def test_every_table_command_ends_with_its_legend_and_its_files(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    _table().to_csv(csv, index=False)
    (tmp_path / "f.txt").write_text("\n".join(str(i) for i in range(0, 200, 9)))
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    assert main(["train", "--data", str(csv), "--target", "label", "--out", str(m1)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith(f"wrote {m1}: model.safetensors") and "baseline:" in "\n".join(out)
    assert main(["unlearn", "--model", str(m1), "--data", str(csv), "--forget",
                 str(tmp_path / "f.txt"), "--out", str(m2)]) == 0  # fmt: skip
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith(f"wrote {m2}: model.safetensors") and "report.md" in out[-1]
    assert "## What the figures mean" in out
    assert main(["evaluate", "--model", str(m2), "--data", str(csv), "--rows", "test"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.splitlines()[-1].startswith("no files written (--json FILE")
    assert "balanced" in out and "baseline: accuracy of always answering" in out.replace("\n", " ")


def test_box_plots_have_a_legend_for_every_mark(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from assd.reports.plots import box_plot

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    box_plot({"a": [1, 2, 3], "b": [2, 3]}, tmp_path / "p.png", title="t", ylabel="y",
             reference=0.0, reference_label="no gain")  # fmt: skip
    (legend,) = [ax.get_legend() for ax in figures[0].axes]
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [
        "middle half (box)", "median", "mean", "whiskers: values within 1.5 box heights",
        "one run (seed)", "no gain",
    ]  # fmt: skip
    assert (tmp_path / "p.png").stat().st_size > 0
