"""Features are finite float32 after scaling, whatever the magnitudes; overflow is refused.

The reference is exact rational arithmetic (fractions.Fraction) of min-max
scaling, rounded to float32 once.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from assd.data.preprocess import Preprocessor

F32_MAX = float(np.finfo(np.float32).max)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def exact_scaled(v: float, low: float, high: float) -> Fraction:
    span = Fraction(high) - Fraction(low)
    return (Fraction(v) - Fraction(low)) / (span if span > 0 else 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=2, max_size=8).filter(lambda v: len(set(v)) > 1))
@example([0.0, 5e-324])  # a subnormal range: halving it rounds to zero
@example([0.0, 5e-324, 1.5e-323])
@example([-1e308, 1e308, 0.0])
def test_training_rows_scale_into_0_1_like_exact_arithmetic(values):
    frame = pd.DataFrame({"x": values})
    prep = Preprocessor.fit(frame, numeric=["x"], categorical=[])
    got = prep.transform(frame)[:, 0]
    low, high = min(values), max(values)
    expected = np.asarray([float(exact_scaled(v, low, high)) for v in values], dtype=np.float32)
    assert prep.feature_names == ["x"]  # a +-1e308 range is not "constant"
    assert np.isfinite(got).all() and got.min() == 0.0 and got.max() == 1.0
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-30)


@settings(max_examples=60, deadline=None)
@given(finite, st.floats(0.0, 100.0), st.floats(1e-3, 1e3))
def test_a_later_value_is_refused_exactly_when_float32_cannot_hold_it(value, low, width):
    prep = Preprocessor.fit(pd.DataFrame({"x": [low, low + width]}), numeric=["x"],
                            categorical=[])  # fmt: skip
    reference = exact_scaled(value, prep.low["x"], prep.high["x"])
    frame = pd.DataFrame({"x": [low, value]})
    if abs(reference) > Fraction(F32_MAX) * Fraction(1 + 1e-7):
        with pytest.raises(ValueError, match=r"column 'x' at row 1 .*beyond what float32"):
            prep.transform(frame)
    elif abs(reference) < Fraction(F32_MAX) * Fraction(1 - 1e-7):
        got = prep.transform(frame)[1, 0]
        assert np.isfinite(got) and got == pytest.approx(float(reference), rel=2e-6, abs=1e-30)


EXTREMES = [1e300, -1e300, 4e39, -4e39, 1.7976931348623157e308]  # over 10: beyond 3.4e38


@pytest.mark.parametrize("value", EXTREMES)
def test_extreme_values_beside_a_small_range_are_refused_with_the_row(value):
    prep = Preprocessor.fit(pd.DataFrame({"x": [0.0, 10.0]}), numeric=["x"], categorical=[])
    with pytest.raises(ValueError, match="at row 2 holds"):
        prep.transform(pd.DataFrame({"x": [1.0, 2.0, value]}))


RANGES = [(-1e308, 1e308), (-1.7976931348623157e308, 1.7976931348623157e308), (-1e308, 0.0)]


@pytest.mark.parametrize(("low", "high"), RANGES)
def test_a_range_wider_than_float64_can_subtract_keeps_the_feature(low, high):
    values = [low, high, low / 2 + high / 2]
    prep = Preprocessor.fit(pd.DataFrame({"x": values}), numeric=["x"], categorical=[])
    assert prep.feature_names == ["x"]
    assert prep.transform(pd.DataFrame({"x": values}))[:, 0].tolist() == [0.0, 1.0, 0.5]


def test_the_fill_of_a_missing_cell_is_finite_beside_huge_values():
    frame = pd.DataFrame({"x": [1.7e308, 1.6e308, float("nan"), 1.6e308, 1.5e308]})
    prep = Preprocessor.fit(frame, numeric=["x"], categorical=[])
    assert prep.fill["x"] == 1.6e308  # the middle value, not inf from (a + b) / 2
    assert np.isfinite(prep.transform(frame)).all()
