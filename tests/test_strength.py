"""The references' strength correction: reduced-budget references get fewer rows right than
a full retraining, so the target's odds are scaled by the odds ratio measured on held-out
rows. Checked against hand-computed odds."""

import pytest
import torch

import assd
from assd.verify.bands import MAX_RATIO, odds_ratio, odds_scale
from assd.verify.evidence import Evidence
from assd.verify.per_example import reference_profile
from assd.verify.references import ReferenceSet


def test_odds_scale_by_hand():
    assert odds_scale(0.5, 3.0) == pytest.approx(0.75)  # odds 1 -> 3
    assert odds_scale(0.2, 4.0) == pytest.approx(0.5)  # odds 1/4 -> 1
    assert odds_scale(0.9, 1 / 9) == pytest.approx(0.5)  # odds 9 -> 1
    assert odds_scale(0.0, 10.0) == 0.0 and odds_scale(1.0, 0.1) == 1.0  # bounds stay put
    assert odds_scale(0.37, 1.0) == pytest.approx(0.37)


def test_odds_ratio_by_hand():
    # 99 rows: 98 % -> (97.02 + 0.5) / 100 = 0.9752; 92 % -> (91.08 + 0.5) / 100 = 0.9158
    s, w = 0.9752, 0.9158
    assert odds_ratio(0.98, 0.92, 99) == pytest.approx((s / (1 - s)) / (w / (1 - w)))
    assert odds_ratio(0.9, 0.9, 50) == pytest.approx(1.0)
    assert odds_ratio(1.0, 0.0, 10_000) == MAX_RATIO  # bounded either way
    assert odds_ratio(0.0, 1.0, 10_000) == pytest.approx(1 / MAX_RATIO)


class Const(torch.nn.Module):
    """Predicts class 0 for rows whose feature is below ``cut``, else class 1."""

    def __init__(self, cut: float):
        super().__init__()
        self.cut = torch.nn.Parameter(torch.tensor(cut))

    def forward(self, x):
        z = (x[:, 0] - self.cut) * 10
        return torch.stack([-z, z], 1)


def test_calibrate_strength_moves_the_target_and_band():
    # 10 forget rows, references right on 2 of them
    hits = torch.tensor([[1, 1] + [0] * 8] * 2, dtype=torch.bool)
    evidence = Evidence(reference_profile(torch.randn(2, 10), hits), 2)
    assert evidence.expected == pytest.approx(0.2) and evidence.strength == 1.0
    raw_band = evidence.band
    # held-out rows: the references get 80 of 100 right, the original 95
    x = torch.arange(100.0)[:, None]
    y = (x[:, 0] >= 50).long()
    test = assd.TensorData(x, y, batch_size=100)
    refs = ReferenceSet.never_saw([Const(39.5), Const(59.5)])
    sets = {"forget": assd.TensorData(x[:10], y[:10]), "test": test}
    evidence = Evidence.of(refs, sets, kind="rows")
    assert evidence.held_out_accuracy == pytest.approx(0.9)  # each misses 10 of 100
    assert Evidence.of(refs, sets, kind="group").held_out_accuracy is None  # not needed
    group = Evidence(evidence.profile, 2, held_out_accuracy=0.8, n_held_out=100)
    group.calibrate_strength(0.95)  # a group keeps the references' own target
    assert group.strength == 1.0
    evidence = Evidence(evidence.profile, 2, kind="rows", held_out_accuracy=0.8,
                        n_held_out=100)
    evidence.calibrate_strength(0.95)
    s, w = (95.5 / 101), (80.5 / 101)
    ratio = (s / (1 - s)) / (w / (1 - w))
    assert evidence.strength == pytest.approx(ratio)
    raw = float(evidence.profile.label_rate.mean())
    assert evidence.expected == pytest.approx(ratio * raw / (1 - raw + ratio * raw))
    # a different profile, the same mapping of the band's ends
    plain = Evidence(reference_profile(torch.randn(2, 10), hits), 2, strength=ratio)
    assert plain.band == pytest.approx(tuple(odds_scale(b, ratio) for b in raw_band))
    # no held-out accuracy: nothing to calibrate on, the target is the references' own
    bare = Evidence(reference_profile(torch.randn(2, 10), hits), 2, kind="rows")
    bare.calibrate_strength(0.95)
    assert bare.strength == 1.0
