"""The model ledger: a hash chain that refuses tampering, ids kept exactly, and
requests that know their history (earlier rows left out, repeats refused)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from assd import Ledger
from assd.cli import main
from assd.store.ledger import LEDGER_FILE, LedgerError
from assd.tabular import TabularModel, TrainConfig, train_table, trained_ids
from assd.tabular.stream import unlearn_request

AWKWARD = ["007", " 7", "a,b", "x#1", "NA", "1e3", "7", "0x1F", "trail ", "ünï©ødé ☃ 😀",
           "x" * 3000, "a, b # c"]  # fmt: skip


def make_table(n=240, seed=0, ids=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": ids or [f"r{i:04d}" for i in range(n)], "x": rng.random(n),
                          "g": rng.choice(list("abcd"), n)})  # fmt: skip
    frame["label"] = np.where((frame.x > 0.5) ^ (frame.g == "a"), "hi", "lo")
    return frame


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """m0 (trained) -> m1 (request 1) -> m2 (request 2, hashed ids), through the CLI."""
    root = tmp_path_factory.mktemp("chain")
    make_table().to_csv(root / "t.csv", index=False)
    assert main(["train", "--data", str(root / "t.csv"), "--target", "label", "--id-column",
                 "id", "--out", str(root / "m0"), "--epochs", "3", "--batch-size", "64"]) == 0
    ids = trained_ids(TabularModel.load(root / "m0"), make_table())
    for k, (parent, out, extra) in enumerate([("m0", "m1", []), ("m1", "m2", ["--hash-ids"]),
                                              ("m0", "s1", [])]):  # fmt: skip
        (root / f"f{k}.txt").write_text("\n".join(ids[8 * k : 8 * k + 8]))
        assert main(["unlearn", "--model", str(root / parent), "--data", str(root / "t.csv"),
                     "--forget", str(root / f"f{k}.txt"), "--out", str(root / out), *extra]) == 0
    return root, ids


def history(folder) -> tuple[int, str]:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["history", "--model", str(folder)])
    return code, out.getvalue() + err.getvalue()


def tampered(chain, tmp_path, edit, folder="m2"):
    root, _ = chain
    copy = tmp_path / folder
    shutil.copytree(root / folder, copy)
    lines = (copy / LEDGER_FILE).read_text(encoding="utf-8").splitlines()
    (copy / LEDGER_FILE).write_text("".join(line + "\n" for line in edit(lines)), encoding="utf-8")
    return history(copy)


def test_a_model_folder_carries_its_parents_ledger_plus_the_new_entry(chain):
    root, ids = chain
    m1, m2 = (Ledger.read(root / m) for m in ("m1", "m2"))
    assert m2.entries[:2] == m1.entries  # the parent's ledger, unchanged
    assert m2.entries[2]["parent_head"] == m1.head
    assert m2.entries[2]["weights_before"] == m1.weights
    assert [e["kind"] for e in m2.entries] == ["base", "forget", "forget"]
    assert m1.entries[1]["rows"] == {"hashed": False, "ids": list(ids[:8])}
    assert m2.entries[2]["rows"]["hashed"] and not set(ids) & set(m2.entries[2]["rows"]["ids"])
    assert m2.forgotten(ids).tolist() == [i < 16 for i in range(len(ids))]
    code, text = history(root / "m2")
    assert code == 0 and "chain verified: 3 entries" in text and "re-check of entry 1" in text


def test_an_edited_entry_is_refused_naming_it(chain, tmp_path):
    def edit(lines):
        entry = json.loads(lines[1])
        entry["rows"]["ids"][0] = "someone-else"
        return [lines[0], json.dumps(entry), lines[2]]

    code, text = tampered(chain, tmp_path, edit)
    assert code == 2 and "entry 1 (forget" in text and "edited" in text


def test_an_edited_entry_with_its_hash_recomputed_breaks_the_next_link(chain, tmp_path):
    from assd.store.ledger import entry_hash

    def edit(lines):
        entry = json.loads(lines[1])
        entry["verdict"] = "all forgotten"
        entry["hash"] = entry_hash(entry)
        return [lines[0], json.dumps(entry), lines[2]]

    code, text = tampered(chain, tmp_path, edit)
    assert code == 2 and "entry 2 (forget" in text and "does not follow" in text


@pytest.mark.parametrize("edit, index, words", [
    (lambda lines: [lines[0], lines[2]], 1, "removed or reordered"),  # a removed middle entry
    (lambda lines: lines[:2], 1, "not the head recorded"),  # truncated: the last entry removed
    (lambda lines: [lines[0], lines[2], lines[1]], 1, "removed or reordered"),  # reordered
])  # fmt: skip
def test_removed_truncated_or_reordered_entries_are_refused_naming_the_entry(
    chain, tmp_path, edit, index, words
):
    code, text = tampered(chain, tmp_path, edit)
    assert code == 2 and f"entry {index} (" in text and words in text


def test_a_swapped_parent_is_refused(chain, tmp_path):
    """m2's own entry on top of the ledger of m1's sibling s1 (another parent)."""
    root, _ = chain
    sibling = (root / "s1" / LEDGER_FILE).read_text(encoding="utf-8").splitlines()
    code, text = tampered(chain, tmp_path, lambda lines: [*sibling, lines[2]])
    assert code == 2 and "entry 2 (forget" in text and "does not follow" in text


def test_a_ledger_copied_beside_other_weights_is_refused(chain, tmp_path):
    root, _ = chain
    copy = tmp_path / "m1"
    shutil.copytree(root / "m1", copy)
    shutil.copy(root / "m0" / "model.safetensors", copy / "model.safetensors")
    code, text = history(copy)
    assert code == 2 and "entry 1 (forget" in text and "does not end at the weights" in text


def test_unlearn_refuses_a_tampered_parent(chain, tmp_path):
    root, ids = chain
    copy = tmp_path / "m2"
    shutil.copytree(root / "m2", copy)
    lines = (copy / LEDGER_FILE).read_text().splitlines()
    (copy / LEDGER_FILE).write_text(lines[0] + "\n" + lines[2] + "\n")
    (tmp_path / "f.txt").write_text(ids[40])
    args = ["unlearn", "--model", str(copy), "--data", str(root / "t.csv"), "--forget",
            str(tmp_path / "f.txt"), "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 2 and not (tmp_path / "out").exists()


def test_repeats_are_refused_unless_again(chain, tmp_path):
    root, ids = chain
    (tmp_path / "f.txt").write_text(f"{ids[3]}\n{ids[30]}\n")  # forgotten by request 1, and new
    args = ["unlearn", "--model", str(root / "m2"), "--data", str(root / "t.csv"), "--forget",
            str(tmp_path / "f.txt"), "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(args) == 2 and not (tmp_path / "o").exists()
    assert main([*args, "--again"]) == 0
    entry = Ledger.read(tmp_path / "o").entries[-1]
    assert entry["rows"]["ids"] == [ids[3], ids[30]]


@pytest.mark.parametrize("hashed", [False, True])
def test_awkward_ids_round_trip_exactly(tmp_path, hashed):
    ids = AWKWARD + [f"{i:04d}" for i in range(200 - len(AWKWARD))]
    make_table(len(ids), ids=ids).to_csv(tmp_path / "t.csv", index=False)
    assert main(["train", "--data", str(tmp_path / "t.csv"), "--target", "label", "--id-column",
                 "id", "--out", str(tmp_path / "m0"), "--epochs", "2", "--split", "none"]) == 0
    (tmp_path / "f.txt").write_text("\n".join(AWKWARD) + "\n", encoding="utf-8")
    args = ["unlearn", "--model", str(tmp_path / "m0"), "--data", str(tmp_path / "t.csv"),
            "--forget", str(tmp_path / "f.txt"), "--out", str(tmp_path / "m1")]  # fmt: skip
    assert main(args + (["--hash-ids"] if hashed else [])) == 0
    ledger = Ledger.read(tmp_path / "m1")
    stored = ledger.entries[-1]["rows"]["ids"]
    if hashed:
        text = (tmp_path / "m1" / LEDGER_FILE).read_text(encoding="utf-8")
        assert not any(json.dumps(i)[1:-1] in text for i in AWKWARD[:-1] if len(i) > 3)
    else:
        assert stored == AWKWARD  # in the order given, every character kept
    assert ledger.forgotten(ids).tolist() == [i < len(AWKWARD) for i in range(len(ids))]
    assert ledger.forgotten(["7 ", "a, b", "x", "ünï©ødé ☃", "x" * 2999]).tolist() == [False] * 5


def test_the_python_ledger_round_trips_and_verifies():
    model = torch.nn.Linear(2, 2)
    ledger = Ledger.start(model)
    ledger.append("forget", weights_before=ledger.weights, weights_after=ledger.weights,
                  rows=ledger.rows(AWKWARD))  # fmt: skip
    again = Ledger.loads(ledger.dumps())
    again.verify(model, head=ledger.head)
    assert again.entries == ledger.entries and again.entries[1]["rows"]["ids"] == AWKWARD
    with pytest.raises(LedgerError, match="does not end at the weights"):
        again.verify(torch.nn.Linear(2, 2))


def direct_importance(model, x, y):
    """Mean over rows of the squared per-row gradient of the cross-entropy (a plain loop)."""
    model = model.eval()
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for n, p in model.named_parameters():
            total[n] += p.grad.double().pow(2).float()
    return {n: t / len(x) for n, t in total.items()}


def test_third_request_importance_is_over_the_rows_that_remain(tmp_path):
    from safetensors import safe_open

    frame = make_table(90)
    model = train_table(frame, target="label", id_column="id",
                        config=TrainConfig(epochs=3, batch_size=16))  # fmt: skip
    ids = list(trained_ids(model, frame))
    one, _ = unlearn_request(model, frame, ids[:5], over_budget="apply", guard=None)
    two, _ = unlearn_request(one, frame, ids[5:9], over_budget="apply", guard=None)
    _, report = unlearn_request(two, frame, ids[9:12], over_budget="apply", guard=None,
                                cache_folder=tmp_path)  # fmt: skip
    with safe_open(report["importance_cache"]["path"], framework="pt") as handle:
        cached = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        n_samples = json.loads(handle.metadata()["info"])["n_samples"]
    remain = [i for i in ids if i not in set(ids[:9])]  # by hand: all rows but requests 1-2
    assert report["ledger"]["excluded"] == 9 and n_samples == len(remain) == 63
    rows = two.task.encode(frame.set_index("id").loc[remain].reset_index())
    expected = direct_importance(two.model, rows.x, rows.y)
    for name, tensor in expected.items():
        torch.testing.assert_close(cached[name], tensor, rtol=1e-4, atol=1e-9)


def test_history_of_a_folder_without_ledger_says_so(chain):
    root, _ = chain
    code, text = history(root / "m0")
    assert code == 0 and "has no ledger" in text


def test_ledger_options_are_refused_for_own_models(tmp_path, capsys):
    args = ["unlearn", "--model-factory", "nowhere:build", "--weights", str(tmp_path / "w"),
            "--data-factory", "nowhere:data", "--forget", str(tmp_path / "f.txt"), "--out",
            str(tmp_path / "o"), "--hash-ids", "--drift-budget", "3"]  # fmt: skip
    assert main(args) == 2
    assert "--hash-ids, --drift-budget: the ledger options are for table models" in (
        capsys.readouterr().err)
