"""The weight fingerprint: a SHA-256 tree hashed in parallel, and older stamps still checked."""

import hashlib
import importlib

import torch
from torch import nn

from assd.store.fingerprint import fingerprint, matches

fingerprint_mod = importlib.import_module("assd.store.fingerprint")  # the name is also a function


def _by_hand(model, piece):
    """The tree the docstring describes, written out with hashlib."""
    top = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        top.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        for start in range(0, len(raw), piece):
            top.update(hashlib.sha256(raw[start : start + piece]).digest())
    return "t1:" + top.hexdigest()


def test_tree_hash_equals_the_hand_computation_with_any_threads(monkeypatch):
    monkeypatch.setattr(fingerprint_mod, "PIECE", 64)  # many pieces per tensor
    model = nn.Sequential(nn.Linear(20, 7), nn.BatchNorm1d(7), nn.Linear(7, 1))
    expected = _by_hand(model, 64)
    assert fingerprint(model, threads=1) == fingerprint(model, threads=4) == expected


def test_every_change_changes_it_and_older_stamps_still_match(monkeypatch):
    monkeypatch.setattr(fingerprint_mod, "PIECE", 64)
    model = nn.Sequential(nn.Linear(20, 7), nn.BatchNorm1d(7))
    stamp = fingerprint(model)
    legacy = hashlib.sha256()  # the fingerprint of earlier releases: one stream
    for name, t in sorted(model.state_dict().items()):
        legacy.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        legacy.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    assert matches(model, stamp) and matches(model, legacy.hexdigest())
    with torch.no_grad():
        model[0].weight[6, 19] += 1e-6  # the last piece of a tensor
    assert not matches(model, stamp) and not matches(model, legacy.hexdigest())
    model[0].weight.data[6, 19] -= 1e-6
    model[1].running_mean[0] = 0.5  # a buffer
    assert fingerprint(model) != stamp
