"""When a forget result counts as met (assd.verify.tolerance): the window around the
references' estimate, references that disagree, and the look-alikes' own window, checked
against hand-computed cases."""

import statistics

import pytest
import torch
from scipy.stats import betabinom

import assd
from assd.verify.evidence import LOOK_ALIKES, Evidence, held_out_rows
from assd.verify.outcome import score_sets
from assd.verify.per_example import reference_profile, row_confidences, row_outputs
from assd.verify.tolerance import (
    GROUP_MARGIN,
    MARGIN,
    Z,
    default_margin,
    references_agree,
    window,
)


def test_window_is_the_margin_or_the_band_whichever_is_wider():
    assert window(0.50, (0.45, 0.55), 0.05) == (0.45, 0.55)
    assert window(0.50, (0.48, 0.52), 0.05) == (0.45, 0.55)  # the margin is wider
    assert window(0.50, (0.30, 0.52), 0.05) == (0.30, 0.55)  # the band is wider below
    assert window(0.02, (0.0, 0.01), 0.05) == (0.0, 0.07)  # never below 0
    assert window(0.98, (0.90, 1.0), 0.05) == (0.90, 1.0)  # never above 1


def test_references_agree_by_their_standard_deviation():
    # sd of (0.10, 0.16) is 0.0424; 1.645 sd = 0.070
    assert statistics.stdev([0.10, 0.16]) * Z == pytest.approx(0.0698, abs=1e-4)
    assert references_agree([0.10, 0.16], 0.15) and not references_agree([0.10, 0.16], 0.05)
    assert references_agree([0.3], 0.05)  # one reference: nothing to disagree with
    assert references_agree([0.1, float("nan"), 0.1], 0.0)


def test_default_margins():
    assert default_margin("group", label_kept=True) == GROUP_MARGIN == 0.15  # a sub-class
    assert default_margin("group", label_kept=False) == MARGIN == 0.05  # a whole class
    assert default_margin("rows", label_kept=True) == MARGIN


class Fixed(torch.nn.Module):
    """Logits that give row ``i`` (its one feature) the confidence ``conf[i]`` in label 0."""

    def __init__(self, conf):
        super().__init__()
        self.conf = torch.nn.Parameter(torch.as_tensor(conf, dtype=torch.float32))

    def forward(self, i):
        c = self.conf[i.long().squeeze(1)]
        return torch.stack([c, torch.zeros_like(c)], 1)


def _rows(n, start=0):
    return assd.TensorData(torch.arange(start, start + n, dtype=torch.float32)[:, None],
                           torch.zeros(n, dtype=torch.long))  # fmt: skip


def test_references_that_disagree_do_not_widen_the_window():
    # 40 rows; reference A gets rows 0-3 right, B rows 0-15: accuracies 0.1 and 0.4
    hits = torch.zeros(2, 40, dtype=torch.bool)
    hits[0, :4], hits[1, :16] = True, True
    evidence = Evidence(reference_profile(torch.randn(2, 40), hits), 2, margin=0.15)
    assert evidence.expected == pytest.approx(0.25)
    # the full band takes their spread, sd 0.212: 0.25 + 1.645 * 0.212 = 0.60
    assert evidence.band[1] == pytest.approx(0.25 + Z * statistics.stdev([0.1, 0.4]))
    # chance alone: 12 rows at p = 1/2 give 1.645 * sqrt(12 / 4) / 40 = 0.071; the Jeffreys
    # floor for 20 hits in 80 (row, reference) pairs is wider, Beta-binomial(40, 20.5, 60.5)
    dist = betabinom(40, 20.5, 60.5)
    low, high = dist.ppf(0.05) / 40, dist.ppf(0.95) / 40
    assert high - 0.25 > Z * 3**0.5 / 40
    assert evidence.chance_band == pytest.approx((low, high))
    expected_window = [min(low, 0.10), max(high, 0.40)]
    conf = torch.full((40,), -5.0)
    conf[:22] = 5.0  # 22 of 40 right (55 %): inside the full band, outside the window
    out = evidence.judge(Fixed(conf), _rows(40))
    assert out["in_band"] and not out["close"] and not out["undetermined"]
    assert out["window"] == pytest.approx([0.10, 0.40])  # the margin alone
    assert out["chance_window"] == pytest.approx(expected_window)
    assert not out["references_agree"] and "references disagree" in out["verdict"]
    conf[10:] = -5.0  # 10 of 40: the references' mean
    assert evidence.judge(Fixed(conf), _rows(40))["close"]


def test_a_few_rows_within_chance_but_beyond_the_margin_are_undetermined():
    # 13 rows, 4 references (one pair each side) that get 12 of them right: 92.3 %
    hits = torch.ones(4, 13, dtype=torch.bool)
    hits[:, 0] = False
    evidence = Evidence(reference_profile(torch.randn(4, 13), hits), 4, kind="rows")
    assert evidence.expected == pytest.approx(12 / 13)
    conf = torch.full((13,), 5.0)
    out = evidence.judge(Fixed(conf), _rows(13))  # all 13 right: 7.7 points above
    assert out["window"] == pytest.approx([12 / 13 - 0.05, 12 / 13 + 0.05], abs=1e-6)
    # not claimed met, but the search stops here: within chance, pushing further on 13 rows
    # would chase noise (and forget more than a model that never saw them may)
    assert not out["close"] and out["undetermined"] and out["met"]
    conf[:2] = -5.0  # 11 of 13: 84.6 %, 7.7 points below: Beta-binomial(13, 48.5, 4.5)
    low = betabinom(13, 48.5, 4.5).ppf(0.05)
    out = evidence.judge(Fixed(conf), _rows(13))
    assert low <= 11 and not out["close"] and out["undetermined"]
    assert "undetermined, NOT claimed met" in out["verdict"] and "13 rows" in out["verdict"]
    conf[:5] = -5.0  # 8 of 13: beyond chance too
    assert not evidence.judge(Fixed(conf), _rows(13))["undetermined"]


def test_look_alikes_must_be_in_their_own_window():
    # a group: 40 forget rows and 40 held-out look-alikes, references miss all of both
    zeros = torch.zeros(2, 40, dtype=torch.bool)
    profile = reference_profile(torch.full((2, 40), -5.0) + 0.1 * torch.randn(2, 40), zeros)
    look = reference_profile(torch.full((2, 40), -5.0) + 0.1 * torch.randn(2, 40), zeros)
    evidence = Evidence(profile, 2, kind="group", look_alikes=_rows(40, start=40),
                        look_profile=look)  # fmt: skip
    conf = torch.full((80,), -5.0)
    assert evidence.judge(Fixed(conf), _rows(40))["close"]
    conf[40:50] = 5.0  # the model still knows 10 of the 40 look-alikes (25 %)
    out = evidence.judge(Fixed(conf), _rows(40))
    assert out["forget_accuracy"] == 0.0 and out["look_accuracy"] == 0.25
    assert not out["close"] and "look-alikes 25.0 %" in out["verdict"]


def test_judge_reuses_the_look_alikes_pass_for_the_held_out_rows():
    # held-out rows = "test" then the look-alikes (a group), or the test rows themselves (rows)
    g = torch.Generator().manual_seed(3)
    model = Fixed(torch.randn(60, generator=g))
    test, look = _rows(30), _rows(30, start=30)
    chained = held_out_rows({"test": test, LOOK_ALIKES: look})
    profile = reference_profile(torch.randn(2, 30, generator=g), torch.zeros(2, 30).bool())
    for held_out, looks in [(chained, look), (test, test)]:
        evidence = Evidence(profile, 2, held_out=held_out, look_alikes=looks)
        options = {"rows": {}, "batch_fn": None, "output_fn": None}
        reused = evidence._held(model, row_confidences(model, looks), options)
        assert torch.equal(reused, row_confidences(model, held_out))


def test_scoring_keeps_the_per_row_outputs_the_judge_would_compute():
    g = torch.Generator().manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4))
    sizes = [("forget", 20), ("retain", 50), ("test", 30)]
    sets = {name: assd.TensorData(torch.randn(n, 3, generator=g),
                                  torch.randint(0, 4, (n,), generator=g), batch_size=7)
            for name, n in sizes}  # fmt: skip
    rows: dict = {}
    score_sets(model, sets, rows=rows, keep=("forget", "test"))
    assert set(rows) == {id(sets["forget"]), id(sets["test"])}  # retain: not kept
    for name in ("forget", "test"):
        conf, hits = row_outputs(model, sets[name])
        assert torch.equal(rows[id(sets[name])][0], conf)
        assert torch.equal(rows[id(sets[name])][1], hits)
    profile = reference_profile(torch.randn(2, 20, generator=g), torch.zeros(2, 20).bool())
    evidence = Evidence(profile, 2, held_out=sets["test"], look_alikes=sets["test"],
                        kind="rows")  # fmt: skip
    assert evidence.judge(model, sets["forget"], rows=rows) == evidence.judge(
        model, sets["forget"])  # fmt: skip
