"""Forget-set scenarios: split sizes, disjointness, labels, seeds and errors."""

import numpy as np
import pytest
import torch

from assd.data.scenarios import ImageData, load_dataset, make_scenario


def synthetic(n_train=60, n_test=30):
    """6 fine classes in 3 coarse pairs; names f0..f5 and c0..c2."""
    g = torch.Generator().manual_seed(0)
    y_train, y_test = torch.arange(n_train) % 6, torch.arange(n_test) % 6
    return ImageData(
        torch.randn(n_train, 1, 4, 4, generator=g), y_train,
        torch.randn(n_test, 1, 4, 4, generator=g), y_test,
        class_names=[f"f{i}" for i in range(6)], coarse_of=torch.tensor([0, 0, 1, 1, 2, 2]),
        coarse_names=["c0", "c1", "c2"], name="synthetic",
    )  # fmt: skip


def check_partition(s):
    xf, yf = s.forget_train()
    xr, yr = s.retain_train()
    assert len(xf) + len(xr) == len(s.x_train) and len(yf) == s.forget.sum()
    # disjoint and covering: every training row lands in exactly one set
    rows_f = {tuple(r.flatten().tolist()) for r in xf}
    rows_r = {tuple(r.flatten().tolist()) for r in xr}
    assert not rows_f & rows_r and len(rows_f) + len(rows_r) == len(s.x_train)
    return yf, yr


def test_full_class_on_digits_matches_the_raw_labels():
    data = load_dataset("digits")
    s = make_scenario("full-class", data, "3")
    yf, yr = check_partition(s)
    assert len(yf) == int((data.y_train == 3).sum()) and set(yf.tolist()) == {3}
    assert 3 not in set(yr.tolist()) and s.n_classes == 10
    _, yt = s.forget_test_set()
    assert len(yt) == int((data.y_test == 3).sum()) and set(yt.tolist()) == {3}
    assert 3 not in set(s.retain_test_set()[1].tolist())
    assert len(yt) + len(s.retain_test_set()[1]) == len(data.y_test)


def test_sub_class_on_digits_learns_pairs_and_forgets_one_digit():
    data = load_dataset("digits")
    s = make_scenario("sub-class", data, 3)
    pairs = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])  # the documented grouping, digit // 2
    np.testing.assert_array_equal(s.y_train.numpy(), pairs[data.y_train.numpy()])
    yf, yr = check_partition(s)
    assert set(yf.tolist()) == {1} and len(yf) == int((data.y_train == 3).sum())
    # the other member of the group (digit 2) stays, with the same coarse label
    assert int((yr == 1).sum()) == int((data.y_train == 2).sum())
    assert s.class_names[s.forget_label] == "2-3" and s.n_classes == 5
    assert len(s.forget_test_set()[1]) == int((data.y_test == 3).sum())


def test_class_scenarios_accept_names():
    data = synthetic()
    by_name = make_scenario("full-class", data, "f4")
    assert by_name.forget_label == 4 and int(by_name.forget.sum()) == 10
    sub = make_scenario("sub-class", data, "f5")
    assert sub.forget_label == 2 and torch.equal(sub.forget, data.y_train == 5)
    assert sub.class_names == ["c0", "c1", "c2"]


def test_coarse_level_data_forgets_a_coarse_class():
    data = synthetic()
    data.level = "coarse"
    s = make_scenario("full-class", data, "c1")
    assert torch.equal(s.forget, (data.y_train == 2) | (data.y_train == 3))
    assert s.n_classes == 3


@pytest.mark.parametrize(("forget", "count"), [("7", 7), (7, 7), ("10%", 6), (0.25, 15)])
def test_random_forgetting_sizes(forget, count):
    data = synthetic()
    s = make_scenario("random", data, forget, seed=3)
    yf, _ = check_partition(s)
    assert len(yf) == count and s.forget_test_set() is None
    assert len(s.retain_test_set()[1]) == len(data.y_test)


def test_random_forgetting_is_seeded():
    data = synthetic()
    a, b = (make_scenario("random", data, 10, seed=s).forget for s in (1, 1))
    c = make_scenario("random", data, 10, seed=2).forget
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    ("scenario", "forget", "match"),
    [
        ("full-class", "nope", "unknown class"),
        ("full-class", 6, "out of range"),
        ("random", 60, "between 1 and 59"),
        ("random", "0%", "between 1"),
        ("random", "lots", "count"),
        ("teleport", 1, "unknown scenario"),
    ],
)
def test_bad_requests_are_refused(scenario, forget, match):
    with pytest.raises(ValueError, match=match):
        make_scenario(scenario, synthetic(), forget)


def test_sub_class_needs_coarse_labels():
    data = synthetic()
    data.coarse_of = None
    with pytest.raises(ValueError, match="coarse"):
        make_scenario("sub-class", data, 1)


def test_cifar_needs_a_folder():
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("cifar10")
