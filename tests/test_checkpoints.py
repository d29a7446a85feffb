"""Model folders: round trip, no overwrite, no pickle, corrupt files."""

import pytest
import torch

from assd.models import build_model
from assd.store.checkpoints import load_model, load_state_dict, save_model

SPEC = {"n_features": 4, "n_classes": 3}


def test_round_trip_keeps_every_weight(tmp_path):
    model = build_model("mlp", **SPEC)
    save_model(tmp_path / "m", model, architecture="mlp", kwargs=SPEC, extra={"epochs": 3})
    loaded, spec = load_model(tmp_path / "m")
    assert spec["extra"] == {"epochs": 3}
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), n


def test_existing_folder_is_not_overwritten_unless_asked(tmp_path):
    folder = tmp_path / "m"
    save_model(folder, build_model("mlp", **SPEC), architecture="mlp", kwargs=SPEC)
    before = (folder / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        save_model(folder, build_model("mlp", **SPEC), architecture="mlp", kwargs=SPEC)
    assert (folder / "model.safetensors").read_bytes() == before
    save_model(folder, build_model("mlp", **SPEC), architecture="mlp", kwargs=SPEC, overwrite=True)
    assert (folder / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary leftovers


def test_pickle_refused_unless_opted_in_and_corrupt_file_explained(tmp_path):
    model = build_model("mlp", **SPEC)
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(ValueError, match="allow_pickle"):
        load_state_dict(path)
    state = load_state_dict(path, allow_pickle=True)
    assert torch.equal(state["net.0.weight"], model.state_dict()["net.0.weight"])
    folder = tmp_path / "m"
    save_model(folder, model, architecture="mlp", kwargs=SPEC)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    with pytest.raises(ValueError, match="truncated, corrupt"):
        load_model(folder)
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        load_model(tmp_path)
