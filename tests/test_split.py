"""Evaluation sets holding what is forgotten: split off, scored apart, never guarded."""

import torch
import torch.nn.functional as F

import assd
from assd.train import fit
from assd.verify.split import separate_forgotten


def one_hot_data(seed=0, n=240):
    """Four classes, each signalled by its own input feature (plus two noise features)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 6, generator=g) * 0.5
    x[:, :4] += 2 * F.one_hot(y, 4)
    return x, y


def trained(seed=2):
    x, y = one_hot_data(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    fit(model, assd.TensorData(x, y, batch_size=60, shuffle=True), epochs=20, lr=0.02,
        optimizer="adam")  # fmt: skip
    return model, x, y


def batches(x, y):
    return assd.TensorData(x, y, batch_size=50)


def test_assd_auto_with_the_forgotten_class_in_the_test_set():
    model, x, y = trained()
    keep = y != 3
    test_x, test_y = one_hot_data(seed=9, n=80)  # holds class 3 too
    sets = {"retain": batches(x[keep], y[keep]), "test": batches(test_x, test_y)}
    result = assd.get_method("assd-auto").unlearn(
        model, forget=batches(x[~keep], y[~keep]), data=batches(x, y), evaluate=sets)
    out = result.outcome
    assert out.n_changed > 0 and out.target["met"] and out.guard["ok"]
    part = out.after["test (forgotten part)"]
    assert part.n == int((test_y == 3).sum()) and out.after["test"].n == int((test_y != 3).sum())
    with torch.no_grad():
        held = result.model(test_x[test_y == 3]).argmax(1)
    assert part.accuracy == float((held == 3).double().mean())  # scored, not guarded
    assert out.guard["worst"]["set"] in ("retain", "test")


def test_split_keeps_dict_batches_and_every_row_once():
    ids = torch.arange(12).reshape(6, 2)
    labels = torch.tensor([0, 1, 2, 0, 2, 1])
    as_dicts = lambda rows: [{"input_ids": ids[rows], "labels": labels[rows]}]  # noqa: E731
    sets = {"forget": [{"input_ids": ids[:1], "labels": torch.tensor([2])}],
            "retain": [{"input_ids": ids[:2], "labels": torch.tensor([0, 1])}],
            "test": as_dicts(torch.arange(6))}  # fmt: skip
    out = separate_forgotten(sets)
    rest, part = out["test"][0], out["test (forgotten part)"][0]
    assert part["labels"].tolist() == [2, 2] and part["input_ids"].tolist() == [[4, 5], [8, 9]]
    assert rest["labels"].tolist() == [0, 1, 0, 1] and len(rest["input_ids"]) == 4
