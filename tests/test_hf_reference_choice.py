"""ASSD's reference choice on a transformer, against the definition: with the per-sample
estimator, I_D on all rows is the row-weighted mean of I_D on the retained rows and I_Df,
so I_Df / I_D(all) is an increasing function of I_Df / I_D(retained) and both references
select the same weights at ASSD's percentile (what benchmarks/hf_selection.py measures on
the tiny BERT and GPT-2)."""

import pytest
import torch

import assd
from assd.rule.dampening import adaptive_alpha

transformers = pytest.importorskip("transformers")

VOCAB, LENGTH = 16, 6


def batches(ids, size=4):
    return [{"input_ids": ids[i : i + size], "labels": ids[i : i + size]}
            for i in range(0, len(ids), size)]  # fmt: skip


def test_reference_all_rows_is_the_weighted_mean_and_selects_the_same_weights():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=8, n_embd=8, n_layer=1,
                                     n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)  # fmt: skip
    model = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, VOCAB, (16, LENGTH), generator=torch.Generator().manual_seed(1))
    forget, retain = ids[:4], ids[4:]
    imp = {k: assd.compute_importance(model, batches(rows), estimator="sample",
                                      task="causal-lm").tensors
           for k, rows in (("f", forget), ("r", retain), ("d", ids))}  # fmt: skip
    f, r, d = imp["f"], imp["r"], imp["d"]
    for name in f:  # the definition: a mean over rows of squared per-row gradients
        torch.testing.assert_close(d[name], (12 * r[name] + 4 * f[name]) / 16,
                                   rtol=1e-4, atol=1e-12)  # fmt: skip
    alpha_r, p = adaptive_alpha(f, r, n_forget=4, n_data=16)
    alpha_d, p_d = adaptive_alpha(f, d, n_forget=4, n_data=16)
    assert p == p_d
    by_retain = torch.cat([(f[n] > alpha_r * r[n]).flatten() for n in f])
    by_all = torch.cat([(f[n] > alpha_d * d[n]).flatten() for n in f])
    assert by_retain.sum() > 0
    assert torch.equal(by_retain, by_all)
