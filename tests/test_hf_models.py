"""Hugging Face models through the public API: tiny models built from configs (no
downloads), padded dict batches, token classification and causal LM via loss_fn."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

import assd

transformers = pytest.importorskip("transformers")

SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=32, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0)  # fmt: skip


def tiny_bert(cls, **options):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, **SMALL, **options)
    return cls(config).eval()


def tiny_gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # fmt: skip
    return transformers.GPT2LMHeadModel(config).eval()


class Sentences(Dataset):
    """Token-id rows of different lengths with a class label (like a tokenised HF dataset)."""

    def __init__(self, n=24, seed=0):
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(3, 9, (n,), generator=g)
        self.rows = [torch.randint(1, 50, (int(k),), generator=g) for k in lengths]
        self.labels = [int(r.sum() % 3) for r in self.rows]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i], "label": self.labels[i]}


def padder(length=None, token_labels=False):
    """A collate function: pad ids with 0 (masked out), to the longest row or ``length``."""

    def collate(rows):
        width = length or max(len(r["input_ids"]) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])], mask[i, : len(r["input_ids"])] = r["input_ids"], 1
        if token_labels:  # a label per token, -100 on the padding (the HF convention)
            labels = torch.where(mask.bool(), ids % 4, torch.full_like(ids, -100))
        else:
            labels = torch.tensor([r["label"] for r in rows])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def assert_close_importance(a, b, rtol=1e-4):
    for name in a.tensors:
        torch.testing.assert_close(a.tensors[name], b.tensors[name], rtol=rtol, atol=1e-10)


def hf_loss_importance(model, batch):
    """Batch-estimator importance of one batch, from the model's own loss (``labels=``)."""
    loss = model(**batch).loss
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {
        n: torch.zeros_like(p) if g is None else g**2
        for (n, p), g in zip(params.items(), grads, strict=True)
    }


def assd_by_definition(model, forget, data, k, n, numpy_alpha, retain_importance, **options):
    """ASSD's (alpha, selected count) from the sample-estimator importances, I_D on the retain
    rows derived by its definition: an independent route to the method's figures."""
    f, whole = (assd.compute_importance(model, rows, estimator="sample", fingerprint=False,
                                        **options).tensors for rows in (forget, data))  # fmt: skip
    d = retain_importance(whole, f, n, k)
    alpha = numpy_alpha(f, d, k, n)
    return alpha, sum(int((f[name] > alpha * d[name]).sum()) for name in f)


def test_bert_sequence_classification_on_padded_dict_batches(numpy_alpha, retain_importance):
    model, rows = tiny_bert(transformers.BertForSequenceClassification, num_labels=3), Sentences()
    forget, _ = assd.forget_retain_loaders(rows, [0, 5, 11], batch_size=8, collate_fn=padder())
    data = DataLoader(rows, batch_size=8, collate_fn=padder())
    # the attention mask reaches the model: padding to 20 instead of the longest row changes nothing
    longest = assd.compute_importance(model, data, estimator="batch")
    wide = assd.compute_importance(model, DataLoader(rows, batch_size=8, collate_fn=padder(20)),
                                   estimator="batch")
    assert_close_importance(longest, wide)
    unmasked = assd.compute_importance(
        model, DataLoader(rows, batch_size=8, collate_fn=padder(20)),
        batch_fn=lambda b: ({"input_ids": b["input_ids"]}, b["labels"]), estimator="batch"
    )  # fmt: skip
    assert not torch.allclose(
        unmasked.tensors["classifier.weight"], wide.tensors["classifier.weight"]
    )
    result = assd.ASSD().unlearn(model, forget=forget, data=data)
    assert result.n_forget == 3 and result.n_data == 24
    alpha, selected = assd_by_definition(model, forget, data, 3, 24, numpy_alpha,
                                         retain_importance)  # fmt: skip
    assert result.alpha == pytest.approx(alpha, rel=1e-5) and result.n_dampened == selected > 0


def test_bert_token_classification_needs_a_loss_for_ignored_labels():
    model, rows = tiny_bert(transformers.BertForTokenClassification, num_labels=4), Sentences(8)
    batch = padder(token_labels=True)([rows[i] for i in range(8)])
    with pytest.raises(ValueError, match=r"negative labels \(e\.g\. -100"):
        assd.compute_importance(model, [batch], estimator="batch")

    def token_loss(logits, labels):
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    imp = assd.compute_importance(model, [batch], loss_fn=token_loss, estimator="batch")
    expected = hf_loss_importance(model, batch)
    for name, want in expected.items():
        torch.testing.assert_close(imp.tensors[name], want, rtol=1e-4, atol=1e-12)


def test_gpt2_causal_lm_through_loss_fn(numpy_alpha, retain_importance):
    model, rows = tiny_gpt2(), Sentences(12)
    collate = padder()

    def lm_batches(ids):
        batch = collate([rows[i] for i in ids])
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return batch

    def next_token_loss(logits, labels):  # predict token t+1 from tokens up to t
        return F.cross_entropy(
            logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100
        )

    batch = lm_batches(range(6))
    imp = assd.compute_importance(model, [batch], loss_fn=next_token_loss, estimator="batch")
    expected = hf_loss_importance(model, batch)
    for name, want in expected.items():
        torch.testing.assert_close(imp.tensors[name], want, rtol=1e-4, atol=1e-12)
    data, forget = [lm_batches(range(6)), lm_batches(range(6, 12))], [lm_batches([1, 7])]
    result = assd.ASSD(loss_fn=next_token_loss).unlearn(model, forget=forget, data=data)
    alpha, selected = assd_by_definition(model, forget, data, 2, 12, numpy_alpha,
                                         retain_importance, loss_fn=next_token_loss)
    assert result.n_forget == 2 and result.alpha == pytest.approx(alpha, rel=1e-5)
    assert result.n_dampened == selected > 0
    assert result.importance_settings["loss"].endswith("next_token_loss")


def test_bert_per_sample_importance_equals_the_batch_estimator_at_batch_size_one(
    numpy_alpha, retain_importance
):
    model, rows = tiny_bert(transformers.BertForSequenceClassification, num_labels=3), Sentences(10)
    padded = DataLoader(rows, batch_size=5, collate_fn=padder(12))  # masked padding
    one_by_one = DataLoader(rows, batch_size=1, collate_fn=padder())  # no padding at all
    sample = assd.compute_importance(model, padded, estimator="sample")
    assert_close_importance(sample, assd.compute_importance(model, one_by_one,
                                                            estimator="batch"), rtol=1e-3)
    forget = [next(iter(padded))]
    result = assd.ASSD(estimator="sample").unlearn(model, forget=forget, data=padded)
    alpha, _ = assd_by_definition(model, forget, padded, 5, 10, numpy_alpha, retain_importance)
    assert result.importance_settings["estimator"] == "sample"
    assert result.alpha == pytest.approx(alpha, rel=1e-5)
