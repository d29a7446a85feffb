"""The ASSD percentile and the exact percentile, against NumPy."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from assd import exact_percentile, forget_percentile
from assd.rule.percentile import percentile_of_chunks


@pytest.mark.parametrize(("share", "expected"), [(0.01, 99.31), (0.05, 98.21), (0.10, 97.60)])
def test_worked_percentiles(share, expected):
    n_data = 100_000
    assert forget_percentile(round(share * n_data), n_data) == pytest.approx(expected, abs=0.005)
    assert forget_percentile(1, 100) == 100 - math.log(2)


def test_percentile_refuses_empty_and_whole_forget_sets():
    with pytest.raises(ValueError, match="empty"):
        forget_percentile(0, 10)
    with pytest.raises(ValueError, match="retrain"):
        forget_percentile(10, 10)


def _with_nonfinite(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = values.copy()
    n = len(out)
    out[rng.integers(0, n, n // 7 + 1)] = np.nan
    out[rng.integers(0, n, n // 11 + 1)] = np.inf
    return out


finite_floats = st.floats(0, 1e6, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.float32, st.integers(2, 300), elements=finite_floats),
    st.floats(0, 100),
    st.integers(0, 2**31),
)
def test_exact_percentile_equals_numpy(values, q, seed):
    mixed = _with_nonfinite(values, np.random.default_rng(seed))
    finite = mixed[np.isfinite(mixed)]
    if finite.size == 0:
        return
    assert exact_percentile(torch.from_numpy(mixed), q) == float(np.percentile(finite, q))


@pytest.mark.parametrize("q", [0.0, 50.0, 97.6, 99.307, 99.99, 100.0])
def test_large_vector_takes_the_bracketing_path_and_stays_exact(q):
    rng = np.random.default_rng(1)
    values = _with_nonfinite(rng.lognormal(0, 4, 3_000_000).astype(np.float32), rng)
    values[:200_000] = 1.5  # heavy ties
    finite = values[np.isfinite(values)]
    expected = float(np.percentile(finite, q))
    assert exact_percentile(torch.from_numpy(values), q) == expected
    # holding at most 2**16 values forces the bracket (and, for the ties, its refinement)
    assert exact_percentile(torch.from_numpy(values), q, max_gather=1 << 16) == expected


def test_chunks_equal_one_flat_vector_and_float64_is_kept():
    rng = np.random.default_rng(2)
    values = rng.standard_normal(5000)
    chunks = [torch.from_numpy(c) for c in np.array_split(values, 7)]
    got = percentile_of_chunks(lambda: iter(chunks), 12.5, total=values.size)
    assert got == float(np.percentile(values, 12.5))


def test_all_nonfinite_is_refused_with_advice():
    with pytest.raises(ValueError, match="no finite values"):
        exact_percentile(torch.tensor([float("nan"), float("inf")]), 50)
