"""Shared test setup: quiet, deterministic, passive OpenMP threads."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import copy

import pytest
import torch
import torch.nn.functional as F

torch.set_num_threads(min(2, torch.get_num_threads()))

try:  # property tests draw the same examples on every run (CI), unless asked to explore
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True)
    _hypothesis_settings.register_profile("explore", derandomize=False)
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a dev extra
    pass


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def reference_loop():
    """Importance the way the SSD reference code computes it (an independent loop)."""
    return _reference_loop


def _reference_loop(model, x, y, batch_size, *, loss_free=False):
    """The SSD reference way: backward per batch, accumulate grad.clone().pow(2) (or abs)."""
    model = copy.deepcopy(model).eval()
    acc = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    batches = 0
    for start in range(0, len(x), batch_size):
        model.zero_grad()
        out = model(x[start : start + batch_size])
        if loss_free:
            loss = torch.norm(out, p="fro", dim=1).pow(2).mean()
        else:
            loss = F.cross_entropy(out, y[start : start + batch_size])
        loss.backward()
        for n, p in model.named_parameters():
            acc[n] += p.grad.clone().abs() if loss_free else p.grad.clone().pow(2)
        batches += 1
    return {n: a / batches for n, a in acc.items()}


@pytest.fixture
def flights_like():
    """Writes a small table in the flights format (`assd data flights`) to a path."""
    return _write_flights_like


def _write_flights_like(path, n=600, seed=0):
    import numpy as np
    import pandas as pd

    from assd.data.flights import flights_delay_frame

    rng = np.random.default_rng(seed)
    days = rng.integers(0, 300, n)
    dates = pd.Timestamp("2013-01-01") + pd.to_timedelta(days, unit="D")
    raw = pd.DataFrame(
        {
            "year": 2013, "month": dates.month, "day": dates.day,
            "sched_dep_time": rng.choice([600, 1230, 1815], n), "sched_arr_time": 900,
            "dep_delay": rng.normal(5, 20, n).round(), "carrier": rng.choice(["UA", "DL"], n),
            "origin": rng.choice(["EWR", "JFK"], n), "dest": rng.choice(list("ABCDEFGH"), n),
            "distance": rng.integers(200, 2000, n),
            "time_hour": [d.strftime("%Y-%m-%dT10:00:00Z") for d in dates],
        }
    )  # fmt: skip
    raw["arr_delay"] = raw.dep_delay + rng.normal(0, 8, n).round()
    flights_delay_frame(raw).to_csv(path, index=False)


@pytest.fixture
def numpy_alpha():
    """ASSD's alpha by its definition, in NumPy: the p-th percentile (p = 100 - ln(1 + 100 k/n))
    of the finite ratios I_Df / I_D pooled over every parameter."""
    return _numpy_alpha


def _numpy_alpha(forget: dict, data: dict, n_forget: int, n_data: int) -> float:
    import math

    import numpy as np

    ratios = np.concatenate([(forget[n] / data[n]).numpy().ravel() for n in forget])
    p = 100 - math.log(1 + 100 * n_forget / n_data)
    return float(np.percentile(ratios[np.isfinite(ratios)], p))


@pytest.fixture
def retain_importance():
    """I_retain derived from the whole set's and the forget set's importances, by definition:
    (n I_D - k I_Df) / (n - k), floored at 0 (the sample estimator's sums subtract)."""
    return _retain_importance


def _retain_importance(whole: dict, forget: dict, n: int, k: int) -> dict:
    return {name: ((whole[name] * n - forget[name] * k) / (n - k)).clamp(min=0) for name in whole}
