"""assd-auto on causal language models of other architectures, built tiny from configs.

The sequence target and its repair were built on GPT-2 (``hf_forget.py``). This
script asks whether they hold on the decoder architectures users bring:
Llama (grouped-query attention, RMSNorm, rotary positions, SwiGLU), Qwen2,
GPT-NeoX, OPT, Phi and Mistral, each with 2 layers of width 32 over a
vocabulary of 40. Per architecture and seed it trains the model (Adam 3e-3,
80 epochs, batches of 32) on 200 rule rows (a start token, then steps of 1-3
modulo the vocabulary) and 6 random "secret" rows repeated 4 times, then asks
``assd-auto`` (``task="causal-lm"``) to forget the secrets, judged against 24
random rows it never saw. It prints the verdict, the forget sequences'
per-token loss against the never-seen 5th-95th percentile range on the returned
model, the share extracted, the retained perplexity's change and the repair
epochs, with the target re-checked here from the returned model's scores.

    python benchmarks/lm_architectures.py [--models llama qwen2 neox opt phi mistral]
        [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time

import torch
import transformers

import assd
from assd.reports import markdown_table
from assd.verify.outcome import score_sets

VOCAB, LENGTH = 40, 12
SHAPE = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 4,
         "max_position_embeddings": LENGTH}  # fmt: skip


def build(name: str) -> torch.nn.Module:
    if name == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**SHAPE,
                                                                      num_key_value_heads=2))
    if name == "qwen2":
        return transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**SHAPE,
                                                                      num_key_value_heads=2))
    if name == "mistral":
        return transformers.MistralForCausalLM(transformers.MistralConfig(
            **SHAPE, num_key_value_heads=2, sliding_window=None))
    if name == "neox":
        return transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**SHAPE))
    if name == "phi":
        return transformers.PhiForCausalLM(transformers.PhiConfig(
            **SHAPE, resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0))
    if name == "opt":
        return transformers.OPTForCausalLM(transformers.OPTConfig(
            vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=LENGTH, word_embed_proj_dim=32,
            dropout=0.0, attention_dropout=0.0))
    raise ValueError(f"unknown model {name!r}")


def batches(ids: torch.Tensor, labels: torch.Tensor, size: int = 32) -> list:
    return [{"input_ids": ids[i : i + size], "attention_mask": torch.ones_like(ids[i : i + size]),
             "labels": labels[i : i + size]} for i in range(0, len(ids), size)]  # fmt: skip


def prompt_masked(ids: torch.Tensor) -> torch.Tensor:
    labels = ids.clone()
    labels[:, :2] = -100  # the first two tokens are the prompt
    return labels


def case(name: str, seed: int) -> list:
    torch.manual_seed(seed)
    model = build(name)
    g = torch.Generator().manual_seed(seed)
    start, step = torch.randint(0, VOCAB, (200, 1), generator=g), torch.randint(1, 4, (200, 1),
                                                                                 generator=g)
    rule = (start + step * torch.arange(LENGTH)) % VOCAB
    secrets = torch.randint(0, VOCAB, (6, LENGTH), generator=g)
    ids = torch.cat([rule, secrets.repeat(4, 1)])
    rows = batches(ids, prompt_masked(ids))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        for batch in rows:
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    unseen = torch.randint(0, VOCAB, (24, LENGTH), generator=g)
    forget = batches(ids[200:], prompt_masked(ids[200:]))
    sets = {"retain": batches(rule, prompt_masked(rule)),
            "unseen": batches(unseen, prompt_masked(unseen))}  # fmt: skip
    before = score_sets(model, sets | {"forget": forget}, task="causal-lm")
    tick = time.perf_counter()
    result = assd.get_method("assd-auto", task="causal-lm").unlearn(
        model, forget=forget, data=rows, evaluate=sets)
    seconds = time.perf_counter() - tick
    after = score_sets(result.model, sets | {"forget": forget}, task="causal-lm")
    losses = after["unseen"].row_losses.double()
    low, high = (float(torch.quantile(losses, q)) for q in (0.05, 0.95))
    inside = low <= after["forget"].loss <= high
    met = inside and after["forget"].extraction <= after["unseen"].extraction  # 0 here
    target = result.outcome.target
    ppl = after["retain"].perplexity / before["retain"].perplexity - 1
    return [name, seed, "met" if target["met"] else "NOT met", "yes" if met else "no",
            f"{after['forget'].loss:.2f}", f"{low:.2f}-{high:.2f}",
            f"{100 * after['forget'].extraction:.0f} %", f"{100 * ppl:+.2f} %",
            target.get("repair_epochs", 0), f"{seconds:.1f}"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+",
                        default=["llama", "qwen2", "neox", "opt", "phi", "mistral"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    rows = [case(name, seed) for name in args.models for seed in args.seeds]
    print(markdown_table(["model", "seed", "own verdict", "target (re-checked)",
                          "forget loss", "never-seen 5-95 %", "extracted",
                          "retain perplexity", "repair epochs", "seconds"], rows))
    print(f"\ntarget met (re-checked): {sum(r[3] == 'yes' for r in rows)} / {len(rows)}; "
          f"own verdict agrees: {sum((r[2] == 'met') == (r[3] == 'yes') for r in rows)} / "
          f"{len(rows)}")


if __name__ == "__main__":
    main()
