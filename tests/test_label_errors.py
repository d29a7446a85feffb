"""Label-error injection: exact rates, always another class, the record matches the change."""

import numpy as np
import pytest
from scipy import stats

from assd.data import inject_label_errors


def _labels(n=3000, k=3, seed=0):
    return np.random.default_rng(seed).integers(0, k, size=n)


@pytest.mark.parametrize("kind", ["uniform", "pair"])
@pytest.mark.parametrize("rate", [0.0, 0.005, 0.025, 0.1, 0.37])
def test_rate_is_exact_and_every_flip_is_another_class(kind, rate):
    y = _labels()
    errors = inject_label_errors(y, rate=rate, kind=kind, seed=3)
    changed = np.flatnonzero(errors.labels != y)
    assert len(errors.rows) == round(rate * len(y))
    assert changed.tolist() == errors.rows.tolist()  # the record names exactly the changed rows
    assert (errors.original == y[errors.rows]).all()
    assert y.tolist() == _labels().tolist()  # the input is untouched


def test_uniform_wrong_class_is_uniform_over_the_other_classes():
    k = 4
    y = _labels(n=40000, k=k, seed=1)
    errors = inject_label_errors(y, rate=0.5, seed=2, n_classes=k)
    offsets = (errors.labels[errors.rows] - errors.original) % k  # 1..k-1, never 0
    counts = np.bincount(offsets, minlength=k)
    assert counts[0] == 0
    assert stats.chisquare(counts[1:]).pvalue > 0.001  # 20,000 draws, uniform over 3 offsets


def test_pair_errors_follow_one_mapping_without_fixed_points():
    y = _labels(k=5)
    errors = inject_label_errors(y, rate=0.2, kind="pair", seed=4, n_classes=5)
    mapping = np.asarray(errors.mapping)
    assert sorted(mapping.tolist()) == list(range(5))
    assert (mapping != np.arange(5)).all()
    assert (errors.labels[errors.rows] == mapping[errors.original]).all()


def test_group_errors_take_whole_groups_and_only_the_last_in_part():
    rng = np.random.default_rng(0)
    groups = rng.choice(list("ABCDEFGHIJ"), size=2000)
    y = rng.integers(0, 3, size=2000)
    errors = inject_label_errors(y, rate=0.25, kind="group", seed=1, groups=groups)
    assert len(errors.rows) == 500
    hit = groups[errors.rows]
    whole = [g for g in errors.groups[:-1]]
    for g in whole:  # every row of the fully taken groups is flipped
        assert (hit == g).sum() == (groups == g).sum()
    assert set(hit) == set(errors.groups)
    assert (errors.labels[errors.rows] == np.asarray(errors.mapping)[errors.original]).all()


def test_same_seed_same_errors_and_record_is_json_ready():
    import json

    y = _labels()
    a = inject_label_errors(y, rate=0.05, seed=7)
    b = inject_label_errors(y, rate=0.05, seed=7)
    c = inject_label_errors(y, rate=0.05, seed=8)
    assert (a.labels == b.labels).all() and not (a.labels == c.labels).all()
    record = json.loads(json.dumps(a.to_dict()))
    assert record["n_changed"] == 150 and record["rows"] == a.rows.tolist()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rate": 1.0}, "rate"),
        ({"rate": 0.1, "kind": "typo"}, "unknown error kind"),
        ({"rate": 0.1, "kind": "group"}, "needs groups"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inject_label_errors(_labels(), seed=0, **kwargs)
