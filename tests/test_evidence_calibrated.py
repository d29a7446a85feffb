"""The per-example test on calibrated confidences: censored ties at the calibration's floor,
look-alike held-out rows, the band's floor for few references and the verdict of a repaired
model, checked against hand-computed cases."""

import itertools
import math

import pytest
import torch
from scipy.stats import betabinom, norm

import assd
from assd.experiments.matrix_run import claimed_forgotten, claimed_met
from assd.verify.conformal import chance_limit, conformal_test, flagged_pmf, usable
from assd.verify.evidence import (
    LOOK_ALIKES,
    Evidence,
    beta_binomial_bounds,
    final_verdict,
    held_out_rows,
)
from assd.verify.per_example import (
    CENSORED_SCALE,
    calibrate,
    membership_test,
    reference_profile,
)
from assd.verify.split import separate_forgotten

Z95 = 1.6448536269514722


def test_censored_floor_is_a_bound_not_a_zero_spread():
    # 3 references put every one of 5 forget rows below all m = 9 held-out rows: each
    # calibrated score is the floor Phi^-1(0.5 / 10) (rank 0 of 9), for every row
    held_out = torch.arange(9.0)
    scores = torch.stack([calibrate(torch.full((5,), -50.0 - j), held_out) for j in range(3)])
    floor = norm.ppf(0.5 / 10)
    assert scores.unique().tolist() == pytest.approx([floor])
    profile = reference_profile(scores)
    assert profile.censored.all() and profile.scale == CENSORED_SCALE
    # a model that puts a row just above one held-out row (rank 1 of 9: Phi^-1(1.5 / 10)) is
    # not a member: (Phi^-1(0.15) - floor) / sqrt(1 + 1/3) = 0.42 < 1.645
    judged = calibrate(torch.tensor([0.5, 0.5, -60.0, 4.0, 9.0]), held_out)
    test = membership_test(judged, profile, fpr=0.05)
    z = (judged - floor) / (CENSORED_SCALE * math.sqrt(1 + 1 / 3))
    assert test.p_value.tolist() == pytest.approx(norm.sf(z.numpy()).tolist(), rel=1e-6)
    # rank 4.5 of 9 (the median, z = 0) is not flagged either; above all 9 rows it is
    assert test.flagged.tolist() == [False, False, False, False, True]


def test_censored_rows_stay_out_of_the_pooled_spread():
    floor = -2.0  # the lowest score of the matrix, where rows 0 and 1 tie
    scores = torch.tensor([[floor, floor, 0.0, 1.0], [floor, floor, 1.0, 3.0]])
    profile = reference_profile(scores)
    assert profile.censored.tolist() == [True, True, False, False]
    # pooled over the two uncensored rows only: squares 0.25 + 0.25 + 1 + 1, 2 dof
    assert profile.scale == pytest.approx(math.sqrt(2.5 / 2))
    assert profile.mean.tolist() == [floor, floor, 0.5, 2.0]
    # equal scores away from the bounds are a measured spread of 0, not censoring
    tied = reference_profile(torch.tensor([[0.0, 1.0, 5.0], [2.0, 1.0, 7.0]]))
    assert not tied.censored.any()


def test_look_alikes_tell_unsure_from_member():
    """A dampened model is unsure on a forgotten class (-7) where models that never saw it
    are confidently wrong (-25); with the class's held-out rows among the calibration rows
    the test compares each forget row with rows like it, and only the member is flagged."""
    g = torch.Generator().manual_seed(0)
    rest = 5 + torch.randn(200, generator=g)  # held-out rows of the retained classes

    hard = torch.randn(100, generator=g)  # each class row's own difficulty, in every model

    def model(forget_shift, look_shift, seed):
        rows = hard + 0.3 * torch.randn(100, generator=torch.Generator().manual_seed(seed))
        return forget_shift + rows[:60], look_shift + rows[60:]

    refs = [model(-25, -25, s) for s in (1, 2)]  # never saw the class: exchangeable
    unsure = model(-7, -7, 3)  # dampened: everything of the class moved up together
    member = model(5, -7, 4)  # trained rows above their look-alikes: plainly members
    with_look = [calibrate(f, torch.cat([rest, la])) for f, la in refs]
    profile = reference_profile(torch.stack(with_look))
    judge = {n: membership_test(calibrate(f, torch.cat([rest, la])), profile).share
             for n, (f, la) in {"unsure": unsure, "member": member}.items()}  # fmt: skip
    assert judge["unsure"] <= 0.1 and judge["member"] == 1.0
    # without look-alikes all reference rows sit at the floor (censored) and the unsure
    # model, below every held-out row too, is not flagged either; the member is, on every
    # row ranked above the held-out rows' 1.4 % quantile (z > floor + 1.645 sqrt(1.5)
    # = -0.79); the censored spread costs power on the member's lowest rows
    floor_only = reference_profile(torch.stack([calibrate(f, rest) for f, _ in refs]))
    assert floor_only.censored.all()
    assert membership_test(calibrate(unsure[0], rest), floor_only).share == 0.0
    ranked = calibrate(member[0], rest)
    expected = float((ranked > norm.ppf(0.5 / 201) + Z95 * math.sqrt(1.5)).double().mean())
    assert membership_test(ranked, floor_only).share == pytest.approx(expected)
    assert expected > 0.75


def test_beta_binomial_floor_of_the_band():
    for n, hits, trials in [(137, 0, 274), (137, 91, 274), (44, 88, 88), (10, 3, 40)]:
        low, high = beta_binomial_bounds(n, hits, trials, 0.05)
        dist = betabinom(n, hits + 0.5, trials - hits + 0.5)
        assert (low, high) == (int(dist.ppf(0.05)), int(dist.ppf(0.95)))
    # two references that miss all 137 forget rows: P(X = 0) = B(.5, 411.5) / B(.5, 274.5)
    p0 = math.exp(math.lgamma(411.5) + math.lgamma(274.5 + 0.5) - math.lgamma(412)
                  - math.lgamma(274.5))  # fmt: skip
    assert p0 < 0.95  # one row right is within what a third never-seen model does
    zeros = torch.zeros(2, 137)
    evidence = Evidence(reference_profile(zeros - 20 + torch.randn(2, 137), zeros.bool()), 2)
    assert evidence.band == (0.0, 1 / 137)  # was [0, 0]: any single row meant "missed"


def test_look_alike_sets_are_kept_apart_and_calibrate():
    x = torch.arange(8.0).reshape(8, 1)
    sets = {"forget": assd.TensorData(x[:2], torch.tensor([1, 1])),
            "retain": assd.TensorData(x[2:5], torch.tensor([1, 0, 0])),
            "test": assd.TensorData(x[5:7], torch.tensor([0, 1])),
            LOOK_ALIKES: assd.TensorData(x[7:], torch.tensor([1]))}  # fmt: skip
    out = separate_forgotten(sets)
    assert list(out) == list(sets)  # the look-alikes (a sub-class: label 1 is kept) stay
    rows = [y for _, y in held_out_rows(out)]
    assert torch.cat(rows).tolist() == [0, 1, 1] and len(list(held_out_rows(out))) == 2
    assert held_out_rows({"forget": sets["forget"]}) is None


def test_verdict_of_a_repaired_model_is_its_own():
    dampened = {"met": True, "in_band": True, "close": True, "forgotten": False,
                "overshoot": False,
                "forget_accuracy": 0.0, "member_share": 0.4, "below_share": 0.0,
                "verdict": "..."}  # fmt: skip
    repaired = {**dampened, "forgotten": True, "member_share": 0.05, "forget_accuracy": 0.01}
    target = final_verdict({**dampened, "after_repair": repaired})
    assert target["met"] and target["forgotten"] and target["member_share"] == 0.05
    assert target["dampened"]["member_share"] == 0.4
    # the repair brought the rows back above the band: the target is missed
    back = {**repaired, "met": True, "in_band": False, "close": False, "forgotten": False}
    missed = final_verdict({**dampened, "after_repair": back})
    assert not missed["met"] and not missed["after_repair"]["met"]
    # in the band but flagged: the target is met (what retraining is judged on), and the
    # verdict is not "forgotten"
    flagged = final_verdict({**dampened, "after_repair": {**repaired, "forgotten": False}})
    assert flagged["met"] and not flagged["forgotten"]

    class Result:  # what the matrix reads
        outcome = type("O", (), {"target": flagged})()

    assert claimed_met(Result()) is True and claimed_forgotten(Result()) is False


def test_judge_says_met_in_band_and_forgotten_with_the_test():
    # 4 rows, 3 references that miss every row and agree on the confidences up to noise
    g = torch.Generator().manual_seed(0)
    scores = -5 + 0.1 * torch.randn(3, 40, generator=g)
    evidence = Evidence(reference_profile(scores, torch.zeros(3, 40, dtype=torch.bool)), 3)
    assert evidence.band == (0.0, 1 / 40)  # Beta-binomial(40, 0.5, 120.5): P(X <= 1) >= 0.95

    class Fixed(torch.nn.Module):  # logits that give each row the wanted confidence
        def __init__(self, conf):
            super().__init__()
            self.conf = torch.nn.Parameter(conf)

        def forward(self, i):
            c = self.conf[i.long().squeeze(1)]
            return torch.stack([c, torch.zeros_like(c)], 1)  # label 0: confidence = c

    rows = assd.TensorData(torch.arange(40.0)[:, None], torch.zeros(40, dtype=torch.long))
    never = evidence.judge(Fixed(-5 + 0.1 * torch.randn(40, generator=g)), rows)
    assert never["met"] and never["in_band"] and never["forgotten"]
    member = evidence.judge(Fixed(torch.full((40,), -3.0)), rows)  # 20 spreads above
    assert member["in_band"] and not member["forgotten"] and member["member_share"] == 1.0
    assert "target met, but NOT forgotten" in member["verdict"]
    right = evidence.judge(Fixed(torch.cat([torch.full((2,), 1.0), torch.full((38,), -5.0)])),
                           rows)  # 2 of 40 right: above the band, within 5 points  # fmt: skip
    assert not right["in_band"] and right["close"] and right["window"] == [0.0, 0.05]
    more = evidence.judge(Fixed(torch.cat([torch.full((3,), 1.0), torch.full((37,), -5.0)])),
                          rows)  # 3 of 40: 7.5 % is beyond the margin  # fmt: skip
    assert not more["close"] and "target missed" in more["verdict"]
    assert not final_verdict(more)["met"] and final_verdict(right)["met"]


def test_conformal_chance_by_enumeration():
    # 2 forget rows and 4 look-alikes, exchangeable: all 6! orders equally likely. At fpr
    # 0.2, a row is flagged when no look-alike reaches it (p = 1 / 5)
    n, m, fpr = 2, 4, 0.2
    counts = [0] * (n + 1)
    for order in itertools.permutations(range(n + m)):
        values = torch.tensor(order, dtype=torch.float64)
        counts[int(conformal_test(values[:n], values[n:], fpr=fpr).flagged.sum())] += 1
    total = math.factorial(n + m)
    assert flagged_pmf(n, m, fpr) == pytest.approx([c / total for c in counts])
    assert counts == [480, 192, 48]  # P(0) = 4/6 * 3/5... by hand: 2/3, 4/15, 1/15
    # the chance limit: the largest k with P(X >= k) >= level
    assert chance_limit(n, m, fpr, level=0.1) == 1 and chance_limit(n, m, fpr, level=0.05) == 2
    assert not usable(18, 0.05) and usable(19, 0.05)  # 1 / (m + 1) <= fpr


def test_conformal_member_and_non_member():
    g = torch.Generator().manual_seed(1)
    look = torch.randn(99, generator=g)  # a model's own never-seen rows, in spreads
    never = conformal_test(torch.randn(200, generator=g), look, fpr=0.05)
    member = conformal_test(5 + torch.randn(200, generator=g), look, fpr=0.05)
    assert member.share == 1.0  # every row above all 99 look-alikes: p = 1 / 100
    assert never.share <= chance_limit(200, 99, 0.05) / 200
    # by hand: a row equal to the 96th largest look-alike is reached by 96 of them (ties count)
    row = look.sort(descending=True).values[95:96]
    assert conformal_test(row, look).p_value.item() == pytest.approx((1 + 96) / 100)
