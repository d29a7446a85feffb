"""Where the search aims (assd.verify.aim), against brute force and scipy's binomial."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

from assd.verify import aim as aim_module
from assd.verify.aim import aim, met_chance, never_seen_counts, poisson_binomial

F64 = torch.float64


def test_poisson_binomial_matches_every_outcome_enumerated():
    rates = [0.1, 0.55, 0.9, 0.3, 0.75, 0.5]
    brute = np.zeros(len(rates) + 1)
    for outcome in itertools.product([0, 1], repeat=len(rates)):
        chance = (p if o else 1 - p for p, o in zip(rates, outcome, strict=True))
        brute[sum(outcome)] += math.prod(chance)
    got = poisson_binomial(torch.tensor(rates, dtype=F64)).numpy()
    assert got == pytest.approx(brute, abs=1e-12)


def test_equal_rates_are_a_binomial():
    pmf = poisson_binomial(torch.full((40,), 0.7, dtype=F64))
    assert pmf.numpy() == pytest.approx(binom.pmf(np.arange(41), 40, 0.7), abs=1e-12)


def test_met_chance_sums_the_draws_within_the_margin():
    rates = torch.tensor([0.2, 0.9, 0.6, 0.4, 0.8, 0.3, 0.7, 0.5, 0.95, 0.1], dtype=F64)
    pmf = poisson_binomial(rates)
    margin = 0.2  # two of the ten rows
    expected = [sum(float(pmf[j]) for j in range(11) if abs(j - k) <= 2) for k in range(11)]
    assert met_chance(pmf, margin).numpy() == pytest.approx(expected, abs=1e-12)


def test_the_spread_beyond_chance_widens_the_count_but_keeps_its_centre():
    rates = torch.full((200,), 0.5, dtype=F64)
    plain, wide = never_seen_counts(rates), never_seen_counts(rates, extra_sd=0.05)
    k = torch.arange(201, dtype=F64)
    assert float(wide.sum()) == pytest.approx(1.0)
    assert float((wide * k).sum()) == pytest.approx(100.0, abs=1e-6)
    variance = float((wide * (k - 100) ** 2).sum())
    # 50 from the rows (200 * 0.25) and 100 from 5 % of 200 rows (plus 1/12 from the grid)
    assert variance == pytest.approx(50 + 100 + 1 / 12, rel=0.01)
    assert float((plain * (k - 100) ** 2).sum()) == pytest.approx(50.0)


def test_many_rows_take_the_normal_count(monkeypatch):
    monkeypatch.setattr(aim_module, "EXACT_ROWS", 50)
    pmf = never_seen_counts(torch.full((100,), 0.3, dtype=F64))
    cdf = norm.cdf(np.arange(102) - 0.5, loc=30, scale=math.sqrt(21))
    cdf[0], cdf[-1] = 0.0, 1.0
    assert pmf.numpy() == pytest.approx(np.diff(cdf), abs=1e-12)


def test_the_aim_is_where_a_never_seen_model_most_likely_lands_within_the_margin():
    # 150 rows, each right at 60 %: a never-seen model gets Binomial(150, 0.6) right,
    # centre 90; within 5 points is within 7 rows
    n, margin, slack = 150, 0.05, 0.05
    draws = binom.pmf(np.arange(n + 1), n, 0.6)
    chance = np.array([draws[max(k - 7, 0):k + 8].sum() for k in range(n + 1)])
    best = chance.max()
    assert int(np.argmax(chance)) == 90
    want = max(k for k in range(n + 1) if chance[k] >= best - slack - 1e-9)
    assert 90 < want < 90 + 7  # above the centre (a weaker change), well inside the margin
    assert aim(torch.full((n,), 0.6, dtype=F64), margin, slack=slack) == pytest.approx(want / n)
    assert aim(torch.full((n,), 0.6, dtype=F64), margin) == pytest.approx(90 / n)  # the centre


def test_on_few_rows_the_aim_is_the_likelier_count():
    # 13 rows; a never-seen model misses row 0 one time in three, the rest never: 13 right
    # is likelier than 12; at two in three, 12 right is likelier
    rates = torch.ones(13, dtype=F64)
    rates[0] = 2 / 3
    assert aim(rates, 0.05) == pytest.approx(1.0)
    rates[0] = 1 / 3
    assert aim(rates, 0.05) == pytest.approx(12 / 13)


def test_a_forgotten_class_aims_at_the_highest_count_still_surely_within_the_margin():
    # 100 rows no never-seen model gets right: anything up to 5 rows is within 5 points
    assert aim(torch.zeros(100, dtype=F64), 0.05) == pytest.approx(0.05)


def test_no_rows_is_an_error():
    with pytest.raises(ValueError, match="at least one forget row"):
        aim(torch.zeros(0), 0.05)
