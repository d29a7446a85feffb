"""The radix-selection percentile (used across FSDP2 ranks), in one process, against NumPy.

With no process group it reduces over this process alone; the 2-process runs
are in tests/test_sharded.py.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from assd.rule.distributed_percentile import (
    sharded_percentile_of_chunks,
    sharded_ratio_percentile,
)
from assd.rule.percentile import ratio_percentile

values32 = arrays(np.float32, st.integers(1, 200), elements=st.floats(width=32))  # NaN, inf too


@settings(max_examples=200, deadline=None)
@given(values32, st.floats(0, 100), st.integers(0, 10))
def test_equals_numpy_on_any_chunks_with_nan_inf_and_negative_values(values, q, cut):
    finite = values[np.isfinite(values)]
    t = torch.from_numpy(values)
    chunks = [t[:cut], t[cut:]]
    if finite.size == 0:
        with pytest.raises(ValueError, match="no finite values"):
            sharded_percentile_of_chunks(lambda: iter(chunks), q)
        return
    got = sharded_percentile_of_chunks(lambda: iter(chunks), q)
    expected = float(np.percentile(finite, q))
    # -0.0 and 0.0 tie; NumPy's formula overflows to NaN between the extremes of float32
    # (e.g. -3.4e38 and 1e31 at q = 0: (b - a) * 0 = inf * 0) and so must the selection
    assert got == expected or (got == 0.0 and expected == 0.0) or (got != got and
                                                                    expected != expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ratios_bit_identical_to_the_single_process_percentile(dtype):
    g = torch.Generator().manual_seed(0)
    forget = {
        "w": torch.rand(300, 7, generator=g, dtype=dtype) ** 4,
        "b": torch.zeros(7, dtype=dtype),
    }
    data = {
        "w": torch.rand(300, 7, generator=g, dtype=dtype) ** 4,
        "b": torch.zeros(7, dtype=dtype),
    }
    data["w"][::5] = 0.0  # x/0 = inf and 0/0 = NaN: both dropped
    forget["w"][::10] = 0.0
    forget["w"][1::3] = forget["w"][1]  # ties
    for q in (0.0, 12.5, 97.6, 99.31, 100.0):
        assert sharded_ratio_percentile(forget, data, q) == ratio_percentile(forget, data, q)


def test_mixed_precision_uses_float64_like_the_single_process_code():
    forget = {
        "a": torch.tensor([1.0, 2.0, 3.0]),
        "b": torch.tensor([1.0, 5.0], dtype=torch.float64),
    }
    data = {"a": torch.tensor([3.0, 3.0, 7.0]), "b": torch.tensor([3.0, 3.0], dtype=torch.float64)}
    assert sharded_ratio_percentile(forget, data, 40.0) == ratio_percentile(forget, data, 40.0)


def test_refuses_a_percentile_outside_0_100():
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        sharded_percentile_of_chunks(lambda: iter([torch.ones(3)]), 101.0)
