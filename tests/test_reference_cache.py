"""Reference models kept in a folder: a later process takes them from disk, bit for bit,
and a damaged, foreign or unfitting file is refused, trained again and rewritten."""

import logging
import os

import numpy as np
import pandas as pd
import pytest
import torch

from assd.store.manifest import owned_files
from assd.verify import references as refs_module
from assd.verify.reference_store import entry_name
from assd.verify.references import Recipe, ReferenceCache, build_references


def rows(n=12):
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 3, generator=g), torch.arange(n) % 2


def counting_recipe(name="linear", blank=lambda: torch.nn.Linear(3, 2)):
    """A recipe whose ``train`` counts its calls; each reference gets seed-drawn weights."""
    calls = []

    def train(x, y, seed):
        calls.append(seed)
        g = torch.Generator().manual_seed(seed)
        model = torch.nn.Linear(3, 2)
        with torch.no_grad():
            model.weight.copy_(torch.randn(2, 3, generator=g))
            model.bias.copy_(torch.randn(2, generator=g) + float(y.float().mean()))
        return model

    return Recipe(name, train, blank=blank), calls


def only_file(folder):
    files = sorted(p for p in folder.iterdir() if p.name.startswith("references-"))
    assert len(files) == 1, files
    return files[0]


def test_a_new_cache_on_the_same_folder_reads_the_references_back(tmp_path):
    x, y = rows()
    recipe, calls = counting_recipe()
    first = build_references(x, y, recipe, pairs=2, seed=5, cache=ReferenceCache(tmp_path))
    assert len(calls) == 4 and not first.cached
    path = only_file(tmp_path)
    assert path.name == entry_name(refs_module._file_key(first.key))
    # a later process: a new cache object, the rows given in another order
    again = build_references(x.flip(0), y.flip(0), recipe, pairs=2, seed=5,
                             cache=ReferenceCache(tmp_path))  # fmt: skip
    assert len(calls) == 4 and again.cached  # nothing trained
    for a, b in zip(first.models, again.models, strict=True):
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
        assert not b.training
    assert torch.equal(first.split.masks, again.split.masks)
    assert torch.equal(first.outside(x, y), again.outside(x, y))  # same rows, same halves
    assert again.seconds == pytest.approx(first.seconds, abs=1e-3)


def test_other_rows_seeds_or_recipes_get_their_own_file(tmp_path):
    x, y = rows()
    recipe, calls = counting_recipe()
    build_references(x, y, recipe, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    build_references(x, y, recipe, pairs=1, seed=1, cache=ReferenceCache(tmp_path))
    build_references(x[:-1], y[:-1], recipe, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    other, other_calls = counting_recipe("linear-b")
    build_references(x, y, other, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    assert len(calls) == 6 and len(other_calls) == 2  # every one trained
    assert len(list(tmp_path.glob("references-*.safetensors"))) == 4


def test_a_damaged_file_is_refused_trained_again_and_rewritten(tmp_path, caplog):
    x, y = rows()
    recipe, calls = counting_recipe()
    first = build_references(x, y, recipe, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    path = only_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # a bit of the last tensor, framing intact
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="assd"):
        again = build_references(x, y, recipe, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    assert "damaged" in caplog.text and path.name in caplog.text
    assert len(calls) == 4 and not again.cached  # trained again
    for a, b in zip(first.models, again.models, strict=True):  # the recipe is deterministic
        assert torch.equal(a.weight, b.weight)
    third = build_references(x, y, recipe, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    assert third.cached and len(calls) == 4  # the rewritten file reads back


def test_a_file_for_other_rows_put_in_place_is_refused(tmp_path, caplog):
    x, y = rows()
    recipe, calls = counting_recipe()
    build_references(x[:-1], y[:-1], recipe, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    foreign = only_file(tmp_path)
    ours = build_references(x, y, recipe, pairs=1, seed=0, cache=None)  # its key, no file
    target = tmp_path / entry_name(refs_module._file_key(ours.key))
    foreign.rename(target)
    with caplog.at_level(logging.WARNING, logger="assd"):
        got = build_references(x, y, recipe, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    assert "not an assd reference set for these rows" in caplog.text
    assert not got.cached and len(calls) == 6


def test_weights_that_do_not_fit_the_recipe_are_refused(tmp_path, caplog):
    x, y = rows()
    recipe, calls = counting_recipe()
    build_references(x, y, recipe, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    wider = Recipe(recipe.name, recipe.train, blank=lambda: torch.nn.Linear(3, 4))
    with caplog.at_level(logging.WARNING, logger="assd"):
        got = build_references(x, y, wider, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    assert "do not fit the recipe's model" in caplog.text
    assert not got.cached and len(calls) == 4


def test_without_blank_or_folder_nothing_is_written(tmp_path):
    x, y = rows()
    recipe, calls = counting_recipe(blank=None)
    cache = ReferenceCache(tmp_path)
    build_references(x, y, recipe, pairs=1, seed=0, cache=cache)
    assert not list(tmp_path.iterdir())
    hit = build_references(x, y, recipe, pairs=1, seed=0, cache=cache)
    assert hit.cached and len(calls) == 2  # still kept in memory


def test_an_unwritable_folder_warns_and_goes_on(tmp_path, caplog):
    x, y = rows()
    recipe, _ = counting_recipe()
    folder = tmp_path / "gone"  # does not exist: the write fails
    with caplog.at_level(logging.WARNING, logger="assd"):
        got = build_references(x, y, recipe, pairs=1, seed=0, cache=ReferenceCache(folder))
    assert "cannot cache the references" in caplog.text
    assert len(got.models) == 2 and not folder.exists()


def test_a_reference_file_belongs_to_the_model_folder(tmp_path):
    """The model folder's manifest counts cache entries as its own (not foreign files)."""
    x, y = rows()
    recipe, _ = counting_recipe()
    build_references(x, y, recipe, pairs=1, seed=0, cache=ReferenceCache(tmp_path))
    ours = only_file(tmp_path).name
    (tmp_path / "references-not-ours.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}")
    owned = owned_files(tmp_path)
    assert ours in owned
    assert "references-not-ours.safetensors" not in owned


def test_a_table_request_in_a_later_process_takes_its_references_from_the_folder(tmp_path):
    from assd.tabular import TrainConfig, train_table, unlearn_rows
    from assd.tabular.report import unlearn_markdown

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"income": rng.gamma(2, 20, 300).round(2),
                          "tier": rng.integers(1, 5, 300)})  # fmt: skip
    frame["label"] = np.where(frame.income + 15 * (frame.tier == 3) > 45, "yes", "no")
    trained = train_table(frame, target="label", config=TrainConfig(batch_size=64, epochs=4))
    forget = [str(i) for i in range(0, 200, 9)]

    def request():
        refs_module._FOLDERS.clear()  # as in a new process: nothing in memory
        return unlearn_rows(trained, frame, forget, method="assd-auto", cache_folder=tmp_path)

    first, report1 = request()
    assert len(list(tmp_path.glob("references-*.safetensors"))) == 1
    second, report2 = request()
    t1, t2 = (r["result"]["outcome"]["target"] for r in (report1, report2))
    assert (t1["references_from"], t2["references_from"]) == ("training", "cache")
    assert "reference models: 4, taken from the cache" in unlearn_markdown(report2)
    for key, value in first.model.state_dict().items():  # the same result, bit for bit
        assert torch.equal(value, second.model.state_dict()[key])
    same = {k: v for k, v in t1.items() if k not in ("references_from",)}
    assert same == {k: v for k, v in t2.items() if k not in ("references_from",)}



def test_requests_on_other_rows_of_the_same_table_share_the_references(tmp_path):
    """Row-level references train on every training row, so a second request on other rows
    takes them from the folder, even where retained rows equal forget rows in content."""
    from assd.tabular import TrainConfig, train_table, unlearn_rows
    from assd.tabular.unlearn import trained_ids

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.integers(0, 3, 400), "b": rng.choice(["u", "v"], 400)})
    frame["label"] = np.where((frame.a == 2) ^ (frame.b == "u"), "yes", "no")
    trained = train_table(frame, target="label", config=TrainConfig(batch_size=64, epochs=3))
    ids = trained_ids(trained, frame)
    froms = []
    for forget in (ids[:10], ids[50:65]):  # 12 distinct rows in all: duplicates on both sides
        refs_module._FOLDERS.clear()
        _, report = unlearn_rows(trained, frame, [str(i) for i in forget], method="assd-auto",
                                 reason="privacy", cache_folder=tmp_path)  # fmt: skip
        froms.append(report["result"]["outcome"]["target"]["references_from"])
    assert froms == ["training", "cache"]
    assert len(list(tmp_path.glob("references-*.safetensors"))) == 1


def test_a_folder_keeps_the_most_recently_used_sets(tmp_path):
    x, y = rows()
    recipe, calls = counting_recipe()

    def request(seed):
        return build_references(x, y, recipe, pairs=1, seed=seed,
                                cache=ReferenceCache(tmp_path, keep=2))  # fmt: skip

    first = request(0)
    path0 = tmp_path / entry_name(refs_module._file_key(first.key))
    os.utime(path0, (1, 1))  # long ago
    second = request(1)
    path1 = tmp_path / entry_name(refs_module._file_key(second.key))
    os.utime(path1, (2, 2))
    assert request(0).cached  # reading set 0 marks it used: set 1 is now the oldest
    (tmp_path / "references-someone-else.safetensors").write_bytes(b"not ours")
    request(2)  # a third set: the least recently used (set 1) goes
    assert path0.exists() and not path1.exists()
    assert (tmp_path / "references-someone-else.safetensors").exists()  # not ours: kept
    assert len(calls) == 6
    with pytest.raises(ValueError, match="keep is how many"):
        ReferenceCache(tmp_path, keep=0)


class TwoInputs(torch.nn.Module):
    """A model called with keyword inputs, as Hugging Face models are."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(3, 3), torch.nn.Linear(2, 3)

    def forward(self, a, b):
        return self.a(a) + self.b(b)


def test_references_train_on_rows_whose_inputs_are_a_mapping():
    """Batches of {"a", "b", "labels"} (a tokenizer's input_ids and attention_mask, say):
    the recipe gets the rows as a mapping, the halves split them whole."""
    import assd
    from assd.methods.auto import AutoASSD
    from assd.train import fit

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(90, 3, generator=g), torch.randn(90, 2, generator=g)
    y = (a[:, 0] > 0).long() + (b[:, 0] > 0.5).long()

    def batches(rows):
        return [{"a": a[i:i + 16], "b": b[i:i + 16], "labels": y[i:i + 16]}
                for i in range(rows.start, rows.stop, 16)]  # fmt: skip

    seen = []

    def train(x, labels, seed):
        seen.append((sorted(x), {tuple(r) for r in torch.cat([x["a"], x["b"]], 1).tolist()}))
        torch.manual_seed(seed)
        model = TwoInputs()
        fit(model, [(x, labels)], epochs=30, lr=0.05, optimizer="adam")
        return model.eval()

    torch.manual_seed(0)
    model = train({"a": a[:80], "b": b[:80]}, y[:80], 0)
    seen.clear()
    forget, retain, test = batches(range(0, 16)), batches(range(16, 80)), batches(range(80, 90))
    result = AutoASSD(target="rows", recipe=Recipe("two-inputs", train),
                      reference_cache=ReferenceCache()).unlearn(
        model, forget=forget, data=forget + retain,
        evaluate={"retain": retain, "test": test})  # fmt: skip
    assert result.outcome.target["basis"] == "references"
    everyone = {tuple(r) for r in torch.cat([a[:80], b[:80]], 1).tolist()}
    assert len(seen) == 4 and all(keys == ["a", "b"] for keys, _ in seen)
    for first, second in ((seen[0][1], seen[1][1]), (seen[2][1], seen[3][1])):  # two pairs
        assert first | second == everyone and not first & second  # halves of all 80 rows
    ragged = [{"a": a[:4], "b": b[:4], "labels": y[:4]},
              {"a": torch.randn(4, 5), "b": b[4:8], "labels": y[4:8]}]  # fmt: skip
    with pytest.raises(ValueError, match="padding='max_length'"):
        refs_module._rows(ragged)
    data = assd.TensorData({"a": a, "b": b}, y, batch_size=32)  # batches of the mapping
    got = list(data)
    assert data.n_samples == 90 and len(data) == 3 and sorted(got[2][0]) == ["a", "b"]
    assert torch.equal(got[2][0]["b"], b[64:]) and torch.equal(got[2][1], y[64:])
    with pytest.raises(ValueError, match="tensors of one length"):
        assd.TensorData({"a": a, "b": b[:5]}, y)
