"""The retain guard's sampling-noise allowance on small sets, against a hand computation."""

import math

import pytest

from assd.verify.guard import RetainGuard, noise_limit
from assd.verify.outcome import SetScore


def binomial_tail(n: int, p: float, k: int) -> float:
    """P(X >= k), X ~ Binomial(n, p), summed term by term upward (in logs: the binomial
    coefficients of 50,000 rows overflow a float; terms past k + 3,000 are below 1e-300)."""
    def term(i: int) -> float:
        return math.exp(math.log(math.comb(n, i)) + i * math.log(p) + (n - i) * math.log1p(-p))

    return sum(term(i) for i in range(k, min(n, k + 3000) + 1))


def test_eighty_rows_allow_one_row_by_hand():
    # P(X=0) = 0.99^80 = 0.4475, P(X=1) = 80 * 0.01 * 0.99^79 = 0.3616,
    # P(X=2) = 3160 * 1e-4 * 0.99^78 = 0.1443: P(X >= 3) = 0.0466 < 0.05 <= P(X >= 2) = 0.1909
    p0 = 0.99**80
    assert p0 == pytest.approx(0.4475, abs=1e-4)
    assert binomial_tail(80, 0.01, 2) == pytest.approx(0.1909, abs=1e-4)
    assert binomial_tail(80, 0.01, 3) == pytest.approx(0.0466, abs=1e-4)
    assert noise_limit(80, 0.01) == 2 / 80
    guard = RetainGuard(0.01)
    before = {"test": SetScore(80, 0.9, 0.3)}
    one, two = (SetScore(80, 0.9 - r / 80, 0.3) for r in (1, 2))
    # the guard caps the quantile's two rows at one row beyond the limit: 1 pp + 1/80
    assert guard.allowed(one) == pytest.approx(0.01 + 1 / 80)
    assert guard.check(before, {"test": one})["ok"]  # 1.25 pp: one row, noise
    broken = guard.check(before, {"test": two})
    assert not broken["ok"] and broken["worst"]["allowed"] == 0.0225
    assert "(limit 1.00 pp; 2.25 pp on its 80 rows for sampling noise)" in broken["verdict"]
    held = guard.check(before, {"test": one})["verdict"]
    assert held == ("Retain guard holds: worst drop 1.25 pp on 'test' (limit 1.00 pp; 2.25 pp "
                    "on its 80 rows for sampling noise).")  # fmt: skip
    none = guard.check(before, {"test": before["test"]})["verdict"]
    assert none == "Retain guard holds: worst drop 0.00 pp on 'test' (limit 1.00 pp)."
    # without the allowance, one row of 80 already breaks a one-point guard
    assert not RetainGuard(0.01, noise=False).check(before, {"test": one})["ok"]


def test_the_cap_keeps_large_sets_near_the_plain_limit():
    guard = RetainGuard(0.01)
    # 1,000 rows: the quantile allows 15 rows (1.5 pp), the cap one row beyond ten: 1.1 pp
    assert binomial_tail(1000, 0.01, 15) >= 0.05 > binomial_tail(1000, 0.01, 16)
    assert noise_limit(1000, 0.01) == 15 / 1000
    assert guard.allowed(SetScore(1000, 0.9, 0.3)) == pytest.approx(0.011)
    # 40 rows: the quantile allows 2 rows (5 pp), the cap one row beyond 0.4: 3.5 pp
    assert binomial_tail(40, 0.01, 2) >= 0.05 > binomial_tail(40, 0.01, 3)
    assert guard.allowed(SetScore(40, 0.9, 0.3)) == pytest.approx(0.035)
    # 10,000 rows: the quantile (about 1.17 pp) is above the cap (1.01 pp): the cap decides
    assert guard.allowed(SetScore(10_000, 0.9, 0.3)) == pytest.approx(0.0101)


@pytest.mark.parametrize("n, p", [(600, 0.01), (1729, 0.01), (20_000, 0.005), (50_000, 0.01)])
def test_the_allowance_is_the_binomial_quantile_and_fades_on_large_sets(n, p):
    k = round(noise_limit(n, p) * n)
    assert binomial_tail(n, p, k) >= 0.05 > binomial_tail(n, p, k + 1)
    z = 1.6449  # the normal approximation's one-sided 5 % quantile
    assert noise_limit(n, p) == pytest.approx(p + z * math.sqrt(p * (1 - p) / n), abs=1.5 / n)


def test_a_large_set_keeps_nearly_the_plain_limit_and_the_worst_set_is_beyond_its_own():
    guard = RetainGuard(0.01)
    before = {"retain": SetScore(100_000, 0.9, 0.3), "test": SetScore(80, 0.9, 0.3)}
    after = {"retain": SetScore(100_000, 0.889, 0.3), "test": SetScore(80, 0.9 - 1 / 80, 0.3)}
    check = guard.check(before, after)
    # 1.1 pp on 100,000 rows is beyond 1.001 pp; 1.25 pp on 80 rows is within its 2.25 pp
    assert not check["ok"] and check["worst"]["set"] == "retain"
    assert noise_limit(100_000, 0.01) < 0.0106


def test_loss_and_metric_kinds_keep_the_plain_limit():
    guard = RetainGuard(0.01)
    assert guard.allowed(SetScore(80, None, 1.0)) == 0.01
    assert guard.allowed(SetScore(80, None, 1.0, metric=0.5)) == 0.01


def test_the_headline_of_a_changed_request_names_the_noise_allowance():
    from assd.verify.guard import guard_change

    guard = RetainGuard(0.01)
    before = {"test": SetScore(80, 0.9, 0.3)}
    asked = {"alpha": 2.0, "guard": guard.check(before, {"test": SetScore(80, 0.8625, 0.3)})}
    kept = {"alpha": float("inf"), "selected": 0, "guard": guard.check(before, before)}
    headline = guard_change(asked, kept)["headline"]
    assert "it would cost 3.75 pp on 'test' (limit 1.00 pp; 2.25 pp on that set for sampling " \
           "noise)" in headline  # 3 rows of 80


def test_a_widening_too_small_to_show_is_not_named():
    from assd.verify.guard import guard_change

    guard = RetainGuard(0.01)
    before = {"test": SetScore(50_000, 0.9, 0.3)}  # allowed 1 pp + 1/50,000 = 1.002 pp
    after = SetScore(50_000, 0.88, 0.3)
    verdict = guard.check(before, {"test": after})["verdict"]
    assert verdict == "Retain guard BROKEN: worst drop 2.00 pp on 'test' (limit 1.00 pp)."
    asked = {"alpha": 2.0, "guard": guard.check(before, {"test": after})}
    kept = {"alpha": float("inf"), "selected": 0, "guard": guard.check(before, before)}
    assert "(limit 1.00 pp); no weaker" in guard_change(asked, kept)["headline"]
