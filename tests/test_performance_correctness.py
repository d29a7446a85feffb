"""The fast paths give the same answers as the plain definitions, in bounded memory.

No timing here: speed is measured by the scripts in benchmarks/.
"""

import copy
import math
import tracemalloc
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import assd
import assd.rule.blocks
import assd.rule.percentile
from assd import TensorData, compute_importance
from assd.importance.estimators import sample_chunk
from assd.parameters import all_finite, trainable_parameters
from assd.rule.dampening import dampen_parameters_
from assd.rule.percentile import exact_percentile, percentile_of_chunks, ratio_percentile


class TorchLiveBytes(TorchDispatchMode):
    """Peak bytes of tensor storage that torch ops allocate while active (tracemalloc does not
    see torch's CPU allocator): each new storage counts from its creation until freed."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.seen: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {_storage(t) for t in torch.utils._pytree.tree_leaves((args, kwargs))}
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                ptr, size = storage.data_ptr(), storage.nbytes()
                if size and ptr not in self.seen and ptr not in inputs:  # views are not new
                    self.seen[ptr] = size
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, ptr)
        return out

    def _free(self, ptr):
        self.live -= self.seen.pop(ptr, 0)


def _storage(t) -> int | None:
    return t.untyped_storage().data_ptr() if isinstance(t, torch.Tensor) else None


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 97 elements, so that every pass walks many blocks and pooled pieces."""
    monkeypatch.setattr(assd.rule.blocks, "BLOCK", 97)
    monkeypatch.setattr(assd.rule.value_blocks, "BLOCK", 97)


def importances(rng, sizes, *, zeros=0.1, ties=0.0):
    """Forget/data importances with 0/0 (NaN), x/0 (inf) and optional tied ratios."""
    f = {f"p{i}": rng.exponential(size=n).astype(np.float32) for i, n in enumerate(sizes)}
    d = {k: rng.exponential(size=v.size).astype(np.float32) for k, v in f.items()}
    for k in f:
        d[k][rng.random(d[k].size) < zeros] = 0.0
        f[k][rng.random(f[k].size) < zeros / 2] = 0.0
        tied = rng.random(f[k].size) < ties
        f[k][tied], d[k][tied] = 3.0, 2.0  # ratio exactly 1.5
    return {k: torch.from_numpy(v) for k, v in f.items()}, {
        k: torch.from_numpy(v) for k, v in d.items()
    }


def numpy_ratios(forget, data):
    r = np.concatenate([(forget[k] / data[k]).numpy().ravel() for k in forget])
    return r[np.isfinite(r)]


@pytest.mark.parametrize("cap", [1, 40, 10**9])  # refinement, bracketing, gather-everything
@pytest.mark.parametrize("ties", [0.0, 0.6])
def test_ratio_percentile_equals_numpy_on_every_path(small_blocks, cap, ties):
    rng = np.random.default_rng(int(ties * 10) + cap % 7)
    forget, data = importances(rng, [5, 300, 1, 2000, 64], ties=ties)
    expected = numpy_ratios(forget, data)
    for q in (0.0, 37.5, 97.6, 99.31, 100.0):
        assert ratio_percentile(forget, data, q, max_gather=cap) == float(
            np.percentile(expected, q)
        )


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float32, st.integers(1, 400), elements=st.floats(-1e6, 1e6, width=32)),
    st.floats(0, 100),
    st.integers(1, 50),
    st.sampled_from([np.nan, np.inf, -np.inf]),
)
def test_exact_percentile_with_tiny_gather_limit_equals_numpy(values, q, cap, odd):
    values = values.copy()
    values[::5] = odd
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    got = exact_percentile(torch.from_numpy(values), q, max_gather=cap)
    assert got == float(np.percentile(finite, q))


def test_mixed_float32_and_float64_chunks_compare_exactly(small_blocks):
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 2, 500).astype(np.float32), rng.lognormal(0, 2, 700)
    chunks = [torch.from_numpy(a), torch.from_numpy(b)]
    expected = np.percentile(np.concatenate([a.astype(np.float64), b]), 71.3)
    assert percentile_of_chunks(lambda: iter(chunks), 71.3, total=1200, max_gather=9) == expected


def test_percentile_streams_in_bounded_memory(monkeypatch):
    """4M ratios (16 MiB as float32) pass through 2 MiB of NumPy memory: blocks of 2**16
    values, a window of at most 2**12, and the bracketing sample, whatever the model's size."""
    monkeypatch.setattr(assd.rule.blocks, "BLOCK", 2**16)
    rng = np.random.default_rng(0)
    forget, data = importances(rng, [3_000_000, 1_000_000, 17], ties=0.02)
    expected = float(np.percentile(numpy_ratios(forget, data), 98.2))
    tracemalloc.start()
    try:
        got = ratio_percentile(forget, data, 98.2, max_gather=2**12)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with TorchLiveBytes() as torch_memory:  # apart: its own bookkeeping is Python memory
        assert ratio_percentile(forget, data, 98.2, max_gather=2**12) == expected
    assert got == expected
    ratio_bytes = 4 * 4_000_017
    assert peak < ratio_bytes / 8, f"peak {peak} bytes: the ratios were materialised"
    assert peak > 2**16  # the measurement sees NumPy's allocations at all
    assert torch_memory.peak < ratio_bytes / 8, f"torch peak {torch_memory.peak} bytes"
    assert torch_memory.peak >= 4 * 2**16  # and torch's: at least one block of ratios


def whole_tensor_dampen_(param, forget, data, alpha, dampening):
    """The rule as written: select, factor, multiply every element."""
    mask = forget > alpha * data
    factor = torch.where(
        mask, (dampening * data / forget).nan_to_num_(nan=1.0).clamp_(max=1.0), 1.0
    )
    param.mul_(factor.to(param.dtype))
    return int(mask.sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize(
    ("alpha", "dampening"), [(0.0, 1.0), (1.3, 1.0), (3.7, 0.5), (math.inf, 1)]
)
def test_blockwise_dampening_is_bit_identical_to_the_whole_tensor_rule(
    small_blocks, dtype, alpha, dampening
):
    rng = np.random.default_rng(5)
    forget, data = importances(rng, [7, 250, 1, 90, 400])
    weights = {
        k: torch.from_numpy(rng.standard_normal(v.numel())).to(dtype) for k, v in forget.items()
    }
    weights["p3"] = weights["p3"].reshape(9, 10).t()  # not contiguous: handled whole
    forget["p3"], data["p3"] = forget["p3"].reshape(9, 10).t(), data["p3"].reshape(9, 10).t()
    expected = {k: w.clone() for k, w in weights.items()}
    counts = {
        k: whole_tensor_dampen_(expected[k], forget[k], data[k], alpha, dampening) for k in weights
    }
    got = dampen_parameters_(weights, forget, data, alpha=alpha, dampening=dampening)
    assert got == {k: (counts[k], weights[k].numel()) for k in weights}
    for k in weights:
        assert torch.equal(weights[k].contiguous().view(torch.uint8),
                           expected[k].contiguous().view(torch.uint8)), k  # fmt: skip


def test_dampening_streams_in_bounded_memory(monkeypatch):
    monkeypatch.setattr(assd.rule.blocks, "BLOCK", 2**16)
    rng = np.random.default_rng(1)
    forget, data = importances(rng, [2_000_000, 500_000])
    weights = {k: torch.ones(v.numel()) for k, v in forget.items()}
    tracemalloc.start()
    try:
        counts = dampen_parameters_(weights, forget, data, alpha=2.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # bfloat16 weights take the torch path (float32/64 ones the NumPy path seen above)
    weights = {k: torch.ones(v.numel(), dtype=torch.bfloat16) for k, v in forget.items()}
    with TorchLiveBytes() as torch_memory:  # apart: its own bookkeeping is Python memory
        torch_counts = dampen_parameters_(weights, forget, data, alpha=2.0)
    assert torch_counts == counts
    assert sum(n for n, _ in counts.values()) > 10_000  # it did dampen
    assert peak < 4 * 2_500_000 / 8  # an eighth of one float32 copy of the weights
    assert 4 * 2**16 <= torch_memory.peak < 4 * 2_500_000 / 8  # torch's allocations too


def test_torch_live_bytes_sees_a_whole_tensor_materialised():
    data = torch.rand(2_500_000)
    with TorchLiveBytes() as memory:
        ratio = data / (data + 1)  # one float32 copy: 10 MB
        del ratio
    assert memory.peak >= 4 * 2_500_000 and memory.live == 0


def test_all_finite_agrees_with_isfinite_including_overflowing_sums():
    big = torch.full((10,), 3e38)  # finite, but the sum overflows: must fall back, not fail
    odd = [torch.tensor([1.0, math.nan]), torch.tensor([math.inf, -math.inf]), torch.zeros(0)]
    for t in [big, big.double(), big.to(torch.bfloat16), *odd, torch.tensor([-math.inf])]:
        assert all_finite(t) == bool(torch.isfinite(t).all()), t


def test_trainable_parameters_skips_frozen_and_refuses_non_finite_weights():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)
    assert list(trainable_parameters(model)) == ["0.weight", "1.weight", "1.bias"]
    with torch.no_grad():
        model[1].weight[0, 0] = math.nan
    with pytest.raises(ValueError, match=r"'1\.weight' holds NaN or infinite"):
        trainable_parameters(model)


def test_sample_chunk_respects_the_memory_budget():
    n = 10_000  # 40 kB of float32 gradients per sample
    assert sample_chunk(n, max_memory=400_000) == 10
    assert sample_chunk(n, max_memory=1) == 1  # always at least one sample
    assert sample_chunk(n, max_memory=400_000, itemsize=2) == 6  # half precision + float32 copy
    default = assd.importance.estimators.default_memory_budget()
    assert sample_chunk(n) == default // (4 * n)
    assert 0 < default <= assd.importance.estimators.CHUNK_BYTES


def test_cached_request_refuses_importance_of_changed_weights(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    compute_importance(model, TensorData(x, y, batch_size=8),
                       estimator="batch").save(tmp_path / "d.safetensors")
    forget = TensorData(x[:4], y[:4], batch_size=8)
    cached = assd.Importance.load(tmp_path / "d.safetensors")
    fresh = assd.ASSD.paper().unlearn(model, forget=forget, data=TensorData(x, y, batch_size=8))
    reused = assd.ASSD.paper().unlearn(model, forget=forget, importance=cached, n_data=40)
    assert reused.alpha == fresh.alpha  # the cache gives the very same request
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed[2].bias[1] += 1e-6
    with pytest.raises(ValueError, match="stale"):
        assd.ASSD.paper().unlearn(changed, forget=forget, importance=cached, n_data=40)
