"""`assd unlearn --model-factory` end to end on Hugging Face models built from configs: a
BERT classifier (data factory returning (train, test)) and a GPT-2 (--task causal-lm)."""

import contextlib
import io
import json
import textwrap

import pytest
import torch

from assd.cli import main

transformers = pytest.importorskip("transformers")

USER_MODULE = '''
import torch
import transformers

SEQ, VOCAB = 8, 40


def bert():
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=16, num_labels=3)
    return transformers.BertForSequenceClassification(config)


def gpt2():
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1,
                                     n_head=2)
    return transformers.GPT2LMHeadModel(config)


class Rows(torch.utils.data.Dataset):
    def __init__(self, ids, labels):
        self.ids, self.labels = ids, labels

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def sentences(seed, n):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (n, SEQ), generator=g)
    ids[:, 0] = torch.arange(n) % 3  # the class is the first token
    return Rows(ids, ids[:, 0].clone())


def bert_rows():
    return sentences(0, 60), sentences(1, 30)  # (train, test)


def secrets(seed, n):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)
    return Rows(ids, ids)  # labels = the input ids


def lm_rows():
    return {"train": secrets(0, 16), "test": secrets(1, 16)}


SEEN = []


def train_bert(ids, labels, seed):
    """The BERT's training (60 full-batch Adam steps) on the rows given."""
    SEEN.append(ids.clone())
    torch.manual_seed(seed)
    model = bert()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
    return model.eval()
'''


@pytest.fixture
def hf_user(tmp_path, monkeypatch):
    (tmp_path / "hfuser.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import hfuser
    from safetensors.torch import save_model

    for make, rows, steps in ((hfuser.bert, hfuser.bert_rows()[0], 60),
                              (hfuser.gpt2, hfuser.lm_rows()["train"], 80)):  # fmt: skip
        torch.manual_seed(0)
        model = make()
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        ids, labels = rows.ids, rows.labels
        for _ in range(steps):
            opt.zero_grad()
            model(input_ids=ids, labels=labels).loss.backward()
            opt.step()
        save_model(model.eval(), f"{make.__name__}.safetensors")
    (tmp_path / "class2.txt").write_text("\n".join(str(i) for i in range(2, 60, 3)) + "\n")
    (tmp_path / "secrets.txt").write_text("0\n1\n")
    yield hfuser
    import sys

    sys.modules.pop("hfuser", None)


def run(args):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_bert_classifier_with_a_train_test_pair(hf_user, tmp_path):
    args = ["unlearn", "--model-factory", "hfuser:bert", "--weights", "bert.safetensors",
            "--data-factory", "hfuser:bert_rows", "--forget", "class2.txt", "--out", "bert-out",
            "--task", "classification"]  # fmt: skip
    code, out, err = run(args)
    assert code == 0, err
    assert "| test | 30 |" in out
    report = json.loads((tmp_path / "bert-out" / "report.json").read_text())
    assert report["n_forget"] == 20 and report["n_train"] == 60
    assert report["accuracy"]["test"]["n"] == 30  # the pair's second item is the test set
    assert report["method"]["options"]["task"] == "classification"


def test_bert_assd_auto_judged_against_references_from_its_train_fn(hf_user, tmp_path):
    """--train-fn on a Hugging Face model whose batches are dicts: the references train on
    the input ids, never on a forget row, and the verdict comes from them."""
    args = ["unlearn", "--model-factory", "hfuser:bert", "--weights", "bert.safetensors",
            "--data-factory", "hfuser:bert_rows", "--forget", "class2.txt", "--out", "judged",
            "--task", "classification", "--method", "assd-auto", "--option", "target=group",
            "--train-fn", "hfuser:train_bert", "--cache-dir", "refs"]  # fmt: skip
    code, out, err = run(args)
    assert code == 0, err
    assert "reference models: 2, trained for this request" in out
    target = json.loads((tmp_path / "judged" / "report.json").read_text())["result"]["outcome"][
        "target"]  # fmt: skip
    assert target["basis"] == "references" and target["n_references"] == 2  # a group: one pair
    assert "reference models that never saw the rows" in target["verdict"]
    # what the references trained on, checked row by row: the two halves of the retained
    # rows, and never a forget row
    rows = hf_user.bert_rows()[0]
    forget = set(range(2, 60, 3))
    as_set = lambda ids: {tuple(r.tolist()) for r in ids}  # noqa: E731
    kept = as_set(rows.ids[[i for i in range(60) if i not in forget]])
    first, second = (as_set(ids) for ids in hf_user.SEEN)
    assert first | second == kept and not first & second and abs(len(first) - len(second)) <= 1
    assert not (first | second) & as_set(rows.ids[sorted(forget)])
    assert len(list((tmp_path / "refs").glob("references-*.safetensors"))) == 1


def test_gpt2_causal_lm_needs_its_task_and_reports_extraction(hf_user, tmp_path):
    args = ["unlearn", "--model-factory", "hfuser:gpt2", "--weights", "gpt2.safetensors",
            "--data-factory", "hfuser:lm_rows", "--forget", "secrets.txt"]  # fmt: skip
    code, _, err = run([*args, "--out", "lm-a"])
    assert code == 2 and "--task causal-lm" in err and "Traceback" not in err
    code, out, err = run([*args, "--out", "lm-b", "--task", "causal-lm", "--method", "assd",
                          "--option", "estimator=batch"])  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "lm-b" / "report.json").read_text())
    forget = report["accuracy"]["forget"]
    model = hf_user.gpt2()
    from safetensors.torch import load_model

    load_model(model, "gpt2.safetensors")
    model.eval()
    rows = hf_user.lm_rows()["train"]
    with torch.no_grad():
        loss = model(input_ids=rows.ids[:2], labels=rows.ids[:2]).loss  # HF's own loss
    assert forget["loss"]["before"] == pytest.approx(float(loss), rel=1e-4)
    assert forget["perplexity"]["before"] == pytest.approx(float(torch.exp(loss)), rel=1e-4)
    assert 0.0 <= forget["extraction"]["after"] <= 1.0
    assert "perplexity" in out and "extraction" in out
