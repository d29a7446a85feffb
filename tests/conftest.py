"""Shared test setup: quiet, deterministic, passive OpenMP threads."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import copy

import pytest
import torch
import torch.nn.functional as F

torch.set_num_threads(min(2, torch.get_num_threads()))


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
