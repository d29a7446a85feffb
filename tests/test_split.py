"""Evaluation sets holding what is forgotten: split off, scored apart, never guarded."""

import torch

from assd.verify.split import separate_forgotten


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
