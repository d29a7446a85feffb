"""`assd train` makes the default request's pass over the training rows: the first request
reads it from the folder, and it is the importance that request would compute."""

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from assd.tabular import TabularModel, TrainConfig, train_table, trained_ids, unlearn_rows


def small_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.random(n), "c": rng.choice(list("abc"), n)})
    frame["label"] = np.where(frame.x > 0.5, "high", "low")
    return frame


def test_the_first_request_reads_the_pass_made_at_training(tmp_path):
    frame = small_table()
    config = TrainConfig(epochs=3, batch_size=32, seed=0)
    trained = train_table(frame, target="label", config=config, importance=True)
    assert trained.extra["importance_seconds"] >= 0 and len(trained.files) == 1
    trained.save(tmp_path / "m")
    (entry,) = (tmp_path / "m").glob("importance-*.safetensors")
    loaded = TabularModel.load(tmp_path / "m")
    forget = [str(i) for i in trained_ids(loaded, frame)[:12]]
    _, first = unlearn_rows(loaded, frame, forget, cache_folder=tmp_path / "m")
    assert first["importance_cache"]["hit"] and first["importance_cache"]["path"] == str(entry)
    # the entry holds what the request computes without any cache
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _, computed = unlearn_rows(loaded, frame, forget, cache_folder=fresh)
    assert not computed["importance_cache"]["hit"]
    made, again = load_file(str(entry)), load_file(computed["importance_cache"]["path"])
    assert made.keys() == again.keys()
    assert all(torch.equal(made[k], again[k]) for k in made)
    assert first["accuracy"] == computed["accuracy"]


def test_without_importance_the_folder_has_no_cache(tmp_path):
    trained = train_table(small_table(), target="label", config=TrainConfig(epochs=2, seed=0))
    trained.save(tmp_path / "m")
    assert not trained.files and "importance_seconds" not in trained.extra
    assert not list((tmp_path / "m").glob("importance-*"))
