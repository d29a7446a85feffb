"""Result log, runner resume, and statistics against hand formulas."""

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from assd.experiments import (
    ResultLog,
    additional_correct,
    gap_closed,
    mean_sd,
    run_cells,
    t_test,
)


def test_torn_last_line_is_ignored_then_cut_off(tmp_path):
    path = tmp_path / "r.jsonl"
    log = ResultLog(path)
    log.append({"key": {"seed": 0}, "acc": 0.5})
    with open(path, "a") as handle:
        handle.write('{"key": {"seed": 1}, "ac')  # a crash mid-write
    assert [r["key"] for r in log.records()] == [{"seed": 0}]
    log.append({"key": {"seed": 1}, "acc": 0.7})
    lines = path.read_text().splitlines()
    assert [json.loads(x)["acc"] for x in lines] == [0.5, 0.7]


def test_damaged_middle_line_is_an_error(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": {}}\nnot json\n{"key": {}}\n')
    with pytest.raises(ValueError, match="line 2"):
        ResultLog(path).records()


def test_runner_resumes_without_redoing_or_duplicating(tmp_path):
    log = ResultLog(tmp_path / "r.jsonl")
    calls = []

    def run_one(cell):
        calls.append(cell["seed"])
        if cell["seed"] == 2 and len(calls) == 3:
            raise KeyboardInterrupt  # interrupted during the third cell
        return {"value": cell["seed"] * 10}

    cells = [{"seed": s} for s in range(4)]
    with pytest.raises(KeyboardInterrupt):
        run_cells(cells, run_one, log, progress=False)
    assert [r["key"]["seed"] for r in log.records()] == [0, 1]
    records = run_cells(cells, run_one, log, config={"name": "t"}, progress=False)
    assert calls == [0, 1, 2, 2, 3]
    assert sorted(r["key"]["seed"] for r in records) == [0, 1, 2, 3]
    assert records[-1]["config"] == {"name": "t"} and "torch" in records[-1]["environment"]


def test_statistics_against_hand_formulas():
    a = [0.61, 0.64, 0.60, 0.66, 0.63]
    b = [0.59, 0.60, 0.58, 0.61, 0.62]
    mean, sd, n = mean_sd([*a, math.nan])
    assert n == 5 and mean == pytest.approx(sum(a) / 5)
    assert sd == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in a) / 4))
    d = np.subtract(a, b)
    t_hand = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    p_hand = 2 * scipy_stats.t.sf(abs(t_hand), df=4)
    assert t_test(a, b, paired=True) == pytest.approx((t_hand, p_hand))
    va, vb = np.var(a, ddof=1) / 5, np.var(b, ddof=1) / 5
    t_welch = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 4)
    assert t_test(a, b, paired=False) == pytest.approx((t_welch, 2 * scipy_stats.t.sf(t_welch, df)))
    assert math.isnan(t_test([1.0], [2.0], paired=False)[0])
    assert additional_correct(0.6, 0.5, 1000) == pytest.approx(200.0)
    assert gap_closed(0.55, 0.5, 0.6) == pytest.approx(0.5)
    assert math.isnan(gap_closed(0.55, 0.5, 0.5))
