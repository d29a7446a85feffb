"""assd-auto on a second tiny language model, over data seeds: how often the secrets go.

The model and data of ``tests/test_hf_tasks.py``'s repair test, which nothing here was
tuned on: a 1-layer GPT-2 (16 wide, vocabulary 24) trained on 96 rule rows (a start token,
then steps of 1-3) plus 4 random secrets repeated 4 times; 32 held-out rule rows and 16
never-seen random rows. Per seed it prints the secrets' extraction before, assd-auto's own
verdict, whether the repair towards the never-seen loss was kept (else the guard undid it),
the secrets' per-token loss after, and the never-seen rows' 5th-95th percentiles then.

    python benchmarks/lm_repair_seeds.py [--seeds 1 2 3 4 5 6 7 8]
"""

from __future__ import annotations

import argparse
import logging

import torch
import transformers

import assd
from assd.verify.outcome import score_sets

VOCAB, LENGTH = 24, 7


def batches(ids, size):
    return [{"input_ids": ids[i : i + size], "labels": ids[i : i + size]}
            for i in range(0, len(ids), size)]  # fmt: skip


def rule_rows(n, g):
    start = torch.randint(0, VOCAB, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    return (start + step * torch.arange(LENGTH)) % VOCAB


def case(seed: int):
    g = torch.Generator().manual_seed(seed)
    rule, held_out = rule_rows(96, g), rule_rows(32, g)
    secrets, unseen = (torch.randint(0, VOCAB, (n, LENGTH), generator=g) for n in (4, 16))
    train = torch.cat([rule, secrets.repeat(4, 1)])
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1,
                                     n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)  # fmt: skip
    model = transformers.GPT2LMHeadModel(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        loss = model(input_ids=train, labels=train).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sets = {"retain": batches(rule, 16), "test": batches(held_out, 16),
            "unseen": batches(unseen, 8)}  # fmt: skip
    return model.eval(), batches(secrets.repeat(4, 1), 8), sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    args = parser.parse_args()
    logging.getLogger("assd").setLevel(logging.ERROR)
    met = 0
    for seed in args.seeds:
        model, forget, sets = case(seed)
        before = score_sets(model, {"forget": forget}, task="causal-lm")["forget"]
        result = assd.get_method("assd-auto", task="causal-lm").unlearn(
            model, forget=forget, retain=sets["retain"], evaluate=sets)
        t = result.outcome.target
        met += bool(t["met"])
        print(f"seed {seed}: extracted before {before.extraction:.2f}; verdict "
              f"{'met' if t['met'] else 'NOT met'}; repair kept: {'repair_goal' in t}; "
              f"secrets' loss {t['forget_loss']:.2f} (never-seen {t['unseen_low']:.2f}-"
              f"{t['unseen_high']:.2f})", flush=True)  # fmt: skip
    print(f"met on {met} of {len(args.seeds)} seeds")


if __name__ == "__main__":
    main()
