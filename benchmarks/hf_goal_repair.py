"""What forgets the tiny GPT-2's secrets: the dampening, or the repair towards the never-seen loss?

For each seed (the model and data of ``benchmarks/hf_forget.py``), the repair that
``assd-auto`` runs for a causal LM (:func:`assd.methods.repair.repair_` with
``forget_goal`` = the never-seen rows' median per-row loss on the original) is started
from three points: no dampening, ASSD's one-shot dampening, and the original with the
forget term off (goal -inf: plain fine-tuning on the retained rows). After each epoch it prints the
secrets' extraction and per-token loss, the never-seen rows' 5th-95th percentiles on the
current model, and the retained and held-out rule rows' perplexity change, until the
issue's criterion holds (extraction at most the never-seen rows', loss within their range,
retained perplexity within 2 %) or 25 epochs. ``held-out`` is what assd-auto's guard also
watches (limit 1 %).

    python benchmarks/hf_goal_repair.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import copy
import math

import torch
from hf_forget import setup

import assd
from assd.methods.repair import repair_
from assd.rule.dampening import adaptive_alpha, dampen_parameters_
from assd.tasks import causal_lm_loss
from assd.verify.outcome import score_sets

STARTS = ["no dampening", "ASSD dampening", "no forget term"]


def scores(case: dict, model) -> dict:
    return score_sets(model, {"forget": case["forget"], "retain": case["retain"],
                              **case["extra"]}, task="causal-lm")  # fmt: skip


def line(case: dict, model, base: dict) -> tuple[str, bool]:
    s = scores(case, model)
    unseen = s["unseen"].row_losses.double()
    low, high = (float(torch.quantile(unseen, q)) for q in (0.05, 0.95))
    ppl = s["retain"].perplexity / base["retain"].perplexity - 1
    held = s["test"].perplexity / base["test"].perplexity - 1
    met = (s["forget"].extraction <= s["unseen"].extraction and low <= s["forget"].loss <= high
           and ppl <= 0.02)  # fmt: skip
    return (f"extracted {s['forget'].extraction:.3f}, loss {s['forget'].loss:6.2f} "
            f"(never-seen {low:.1f}-{high:.1f}), retained ppl {100 * ppl:+.2f} %, "
            f"held-out {100 * held:+.2f} %{'  MET' if met else ''}"), met  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    for seed in args.seeds:
        case = setup("gpt2", seed)
        base = scores(case, case["model"])
        goal = float(base["unseen"].row_losses.double().median())
        imp = {k: assd.compute_importance(case["model"], case[k], estimator="sample",
                                          task="causal-lm").tensors
               for k in ("forget", "retain")}  # fmt: skip
        n_forget = len(case["forget"].dataset)
        alpha, _ = adaptive_alpha(imp["forget"], imp["retain"], n_forget=n_forget,
                                  n_data=len(case["train"]))  # fmt: skip
        for start in STARTS:
            model = copy.deepcopy(case["model"])
            if start == "ASSD dampening":
                dampen_parameters_(dict(model.named_parameters()), imp["forget"], imp["retain"],
                                   alpha=alpha, dampening=1.0)  # fmt: skip
            text, _ = line(case, model, base)
            print(f"seed {seed}, {start} (goal {goal:.2f}): start: {text}", flush=True)
            epoch = 0

            def done(model=model, case=case, base=base):
                nonlocal epoch
                epoch += 1
                text, met = line(case, model, base)
                if met or epoch in (1, 3, 5, 10, 15, 20, 25):
                    print(f"  epoch {epoch:2d}: {text}", flush=True)
                return met

            repair_(model, retain=case["retain"], forget=case["forget"], done=done, epochs=25,
                    loss_fn=causal_lm_loss,
                    forget_goal=-math.inf if start == "no forget term" else goal)  # fmt: skip


if __name__ == "__main__":
    main()
