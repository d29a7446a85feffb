"""Model folders and cache entries: an edited or damaged file is refused, naming file and field.

Each case edits one file the way a person (or a broken tool) might and checks
the message names that file and the field; unedited folders keep loading.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from assd.batches import TensorData
from assd.tabular import TabularModel, TrainConfig, train_table
from assd.tabular.cache import cached_importance

OPTIONS = {"objective": "loss", "estimator": "batch", "train_mode": False}

CACHE_EDITS = {
    "n_samples": lambda info: {**info, "n_samples": info["n_samples"] * 2},
    "reference": lambda info: {**info, "reference": "retain"},
    "batch_size": lambda info: {**info, "batch_size": 3},
    "estimator": lambda info: {**info, "estimator": "sample"},
    "extra-field": lambda info: {**info, "note": 1},
}


@pytest.mark.parametrize("edit", CACHE_EDITS, ids=list(CACHE_EDITS))
def test_an_edited_cache_description_is_refused_and_recomputed(tmp_path, edit, caplog):
    model = torch.nn.Linear(3, 2)
    data = TensorData(torch.randn(12, 3), torch.randint(0, 2, (12,)), batch_size=4)
    first, info = cached_importance(model, data, options=OPTIONS, data_key="d", folder=tmp_path)
    path = info["path"]
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    described = json.loads(metadata["info"])
    edited = json.dumps(CACHE_EDITS[edit](described))
    save_file(tensors, path, metadata={**metadata, "info": edited})
    again, info = cached_importance(model, data, options=OPTIONS, data_key="d", folder=tmp_path)
    assert not info["hit"] and "do not match its checksum" in caplog.text
    assert again.n_samples == first.n_samples == 12 and again.reference == first.reference
    for name, tensor in first.tensors.items():
        assert torch.equal(again.tensors[name], tensor)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.random(80), "c": rng.choice(["p", "q"], 80)})
    frame["y"] = np.where(frame.x > 0.5, "hi", "lo")
    folder = tmp_path_factory.mktemp("m") / "m"
    train_table(frame, target="y", split="none", config=TrainConfig(epochs=1)).save(folder)
    return folder, frame


def _edited(saved, tmp_path, name, change):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(saved[0], folder)
    state = json.loads((folder / name).read_text())
    change(state)
    (folder / name).write_text(json.dumps(state, indent=1))
    return folder


def _set(path, value):
    def change(state):
        node = state
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


EDITS = [
    ("task.json", ("class_names",), ["lo", "hi"], "class_names"),  # reordered: wrong predictions
    ("task.json", ("preprocessor", "high", "x"), 1e300, "preprocessor"),
    ("task.json", ("preprocessor", "low", "x"), float("nan"), "preprocessor"),
    ("task.json", ("preprocessor", "keep"), ["x", "c=p", "c=zzz"], "preprocessor"),
    ("task.json", ("test_share",), 0.5, "test_share"),
    ("task.json", ("target",), "x", "target"),
    ("model.json", ("kwargs", "n_features"), 10**12, "kwargs"),
    ("model.json", ("kwargs", "n_classes"), 3, "kwargs"),
    ("model.json", ("extra",), ["a", "list"], "extra"),
    ("model.json", ("extra", "training", "lr"), 0.5, "extra"),
    ("model.json", ("architecture",), "mlp-large", "architecture"),
]


@pytest.mark.parametrize(("name", "path", "value", "field"), EDITS,
                         ids=[f"{n}:{'.'.join(p)}" for n, p, *_ in EDITS])  # fmt: skip
def test_an_edited_model_file_is_refused_naming_file_and_field(saved, tmp_path, name, path,
                                                               value, field):  # fmt: skip
    folder = _edited(saved, tmp_path, name, _set(path, value))
    with pytest.raises(ValueError, match=rf"{name} was changed after assd wrote it.*'{field}'"):
        TabularModel.load(folder)


def test_a_reformatted_but_equal_file_still_loads(saved, tmp_path):
    folder = _edited(saved, tmp_path, "task.json", lambda state: None)  # indent 1 -> same values
    loaded = TabularModel.load(folder)
    frame = saved[1]
    original = TabularModel.load(saved[0])
    assert torch.equal(loaded.task.encode(frame).x, original.task.encode(frame).x)


UNMARKED = [
    ("task.json", ("preprocessor", "keep"), ["x", "c=p", "c=zzz"], r"preprocessor\.keep"),
    ("task.json", ("preprocessor", "high", "x"), float("nan"), r"preprocessor\.high"),
    ("task.json", ("preprocessor", "low", "x"), 5.0, r"preprocessor\.low"),
    ("task.json", ("preprocessor", "levels", "c"), ["p", "p"], r"preprocessor\.levels"),
    ("task.json", ("preprocessor", "kinds"), {"c": "colour"}, r"preprocessor\.kinds"),
    ("task.json", ("preprocessor", "numeric"), "x", r"preprocessor\.numeric"),
    ("task.json", ("preprocessor", "extra"), 1, "unknown field"),
    ("task.json", ("class_names",), ["hi"], "at least 2 classes"),
    ("task.json", ("class_names",), ["hi", "hi"], "distinct"),
    ("task.json", ("test_ids",), [1, 2], "test_ids"),
    ("task.json", ("split",), "sometimes", "'split'"),
    ("task.json", ("test_share",), 1.5, "test_share"),
    ("task.json", ("note",), "mine", "unknown field"),
    ("task.json", ("class_names",), ["a", "b", "c"], "model.json's kwargs.n_classes is 2"),
    ("model.json", ("kwargs", "n_features"), 10**12, r"kwargs\.n_features"),
    ("model.json", ("kwargs", "n_features"), -3, r"kwargs\.n_features"),
    ("model.json", ("kwargs", "n_classes"), {"a": 1}, r"kwargs\.n_classes"),
    ("model.json", ("kwargs",), [1, 2], "'kwargs'"),
    ("model.json", ("extra",), ["a", "list"], "'extra'"),
    ("model.json", ("architecture",), 7, "'architecture'"),
    ("model.json", ("architecture",), "mlp-large", "do not fit the architecture"),
    ("model.json", ("kwargs", "n_classes"), 3, "do not fit the architecture"),
]


@pytest.mark.parametrize(("name", "path", "value", "says"), UNMARKED,
                         ids=[f"{n}:{'.'.join(p)}={v!r}"[:60] for n, p, v, _ in UNMARKED])
def test_a_malformed_file_of_a_folder_without_checksums_is_refused_naming_the_field(
        saved, tmp_path, name, path, value, says):  # fmt: skip
    folder = _edited(saved, tmp_path, name, _set(path, value))
    (folder / ".assd-output").unlink()  # as an earlier version wrote it: no checksums
    with pytest.raises(ValueError, match=says) as error:
        TabularModel.load(folder)
    assert name in str(error.value) and "model.safetensors (" not in str(error.value)


def _unreadable(monkeypatch):
    from assd.store import files

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(files, "open", refuse, raising=False)


def test_a_file_that_may_not_be_read_is_not_called_corrupt(saved, monkeypatch):
    _unreadable(monkeypatch)
    with pytest.raises(PermissionError, match="not necessarily damaged") as error:
        TabularModel.load(saved[0])
    assert "corrupt" not in str(error.value)


def test_unreadable_weights_and_importance_files_are_not_called_corrupt(saved, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    import assd
    from assd.own_model import load_model_factory
    from assd.store.checkpoints import load_state_dict

    imp = assd.compute_importance(torch.nn.Linear(2, 2), [(torch.randn(4, 2),
                                                           torch.tensor([0, 1, 0, 1]))])
    imp.save(tmp_path / "imp.safetensors")
    _unreadable(monkeypatch)
    calls = [lambda: load_state_dict(saved[0] / "model.safetensors"),
             lambda: assd.Importance.load(tmp_path / "imp.safetensors"),
             lambda: load_model_factory("torch.nn:Identity", saved[0] / "model.safetensors")]
    for call in calls:  # fmt: skip
        with pytest.raises(PermissionError, match="not necessarily damaged"):
            call()
