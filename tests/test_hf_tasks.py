"""Tasks on Hugging Face models built from configs: a causal LM's extraction equals greedy
decoding, and the methods score sequence outputs under the named task."""

import pytest
import torch

import assd
from assd.verify.outcome import score_sets

transformers = pytest.importorskip("transformers")

VOCAB, LENGTH = 24, 7


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1,
                                     n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


def batches(ids, size=4):
    return [{"input_ids": ids[i : i + size], "labels": ids[i : i + size]}
            for i in range(0, len(ids), size)]  # fmt: skip


@pytest.fixture(scope="module")
def memorised():
    """A tiny GPT-2 fitted to 8 random sequences (memorised), and 8 it never saw."""
    g = torch.Generator().manual_seed(0)
    seen, unseen = (torch.randint(0, VOCAB, (8, LENGTH), generator=g) for _ in range(2))
    model = tiny_gpt2()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(120):
        loss = model(input_ids=seen, labels=seen).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), seen, unseen


def greedy(model, prefix, steps):
    ids = prefix
    with torch.no_grad():
        for _ in range(steps):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1:].argmax(-1)], 1)
    return ids


def test_extraction_is_greedy_decoding_from_the_first_token(memorised):
    model, seen, unseen = memorised
    both = torch.cat([seen, unseen])
    truth = (greedy(model, both[:, :1], LENGTH - 1) == both).all(1).double().mean()
    score = score_sets(model, {"s": batches(both)}, task="causal-lm")["s"]
    assert score.extraction == pytest.approx(float(truth))
    assert 0 < score.extraction < 1  # memorised rows are extracted, unseen ones are not
    hf_loss = model(input_ids=both, labels=both).loss  # HF's own mean next-token loss
    assert score.loss == pytest.approx(float(hf_loss.detach()), rel=1e-5)
    with pytest.raises(ValueError, match="name the task"):
        score_sets(model, {"s": batches(both)})


def test_assd_on_a_causal_lm_scores_under_the_task(memorised):
    model, seen, unseen = memorised
    forget, retain = batches(seen[:2]), batches(seen[2:])
    sets = {"retain": retain, "test": batches(unseen)}
    with pytest.raises(ValueError, match="name the task"):  # asked before any pass
        assd.ASSD().unlearn(model, forget=forget, retain=retain, evaluate=sets)
    result = assd.ASSD(task="causal-lm").unlearn(model, forget=forget, retain=retain,
                                                 evaluate=sets)  # fmt: skip
    before = result.outcome.before
    assert before["forget"].extraction == 1.0 and before["test"].extraction == 0.0
    with torch.no_grad():
        retain_loss = model(input_ids=seen[2:], labels=seen[2:]).loss
    assert before["retain"].perplexity == pytest.approx(float(torch.exp(retain_loss)), rel=1e-4)
    assert "perplexity" in result.outcome.verdict()
    # the sample estimator's hooks take the task's loss (a mean of per-row losses)
    imp = assd.compute_importance(model, forget, estimator="sample", task="causal-lm")
    assert imp.paths["transformer.h.0.mlp.c_fc.weight"] in ("hooks", "torch.func", "loop")
