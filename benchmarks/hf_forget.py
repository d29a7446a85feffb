"""Forgetting on tiny Hugging Face models: a BERT forgets a class, a GPT-2 forgets secrets.

The models and data are ``examples/hf_tiny.py`` (built from configs, trained
here per seed). Methods, all with their defaults (nothing tuned here): ``assd``
(one shot), ``assd-auto`` (guard 1 %), ``ASSD.paper()`` (batch estimator, I_D on
all rows), ``gradient-ascent`` and ``retrain`` (the same training on the kept rows).

Judged by the issue's criteria, on every seed:

- BERT: forget-class accuracy (training rows of the class) within 5 pp of
  retraining's, and retained-row accuracy at most 1.5 pp below the original's;
- GPT-2: the secrets' greedy extraction from their prompt at most the never-seen
  rows' rate, their per-token loss between the never-seen rows' 5th and 95th
  percentiles, and retained-row perplexity within 2 %.

``own verdict`` is assd-auto's own (``result.outcome.target["met"]``), printed
beside the criterion so that a verdict that disagrees with it shows.

    python benchmarks/hf_forget.py [--seeds 0 1 2] [--models bert gpt2] [--guard 0.02]

``--guard`` sets assd-auto's retain guard (default: its own, 1 %).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import hf_tiny

import assd
from assd.reports import markdown_table
from assd.verify.outcome import score_sets

METHODS = ["assd", "assd-auto", "assd-paper", "gradient-ascent", "retrain"]
EPOCHS = {"bert": 30, "gpt2": 150}


def loader(rows, ids=None, batch=32):
    return DataLoader(rows if ids is None else Subset(rows, ids), batch_size=batch)


def setup(name: str, seed: int) -> dict:
    """Trained model, the forget / kept ids, and the evaluation sets."""
    torch.manual_seed(seed)
    if name == "bert":
        train, test = hf_tiny.bert_rows(seed)
        forget = [i for i in range(len(train)) if int(train.labels[i]) == hf_tiny.CLASSES - 1]
        extra, task, make = {"test": loader(test)}, "classification", hf_tiny.bert
    else:
        sets = hf_tiny.lm_rows(seed)
        train, forget = sets["train"], hf_tiny.secret_ids()
        extra = {"test": loader(sets["test"]), "unseen": loader(sets["unseen"])}
        task, make = "causal-lm", hf_tiny.gpt2
    model = hf_tiny.train(make(), train, epochs=EPOCHS[name], seed=seed)
    kept = [i for i in range(len(train)) if i not in set(forget)]
    return {"name": name, "task": task, "make": make, "model": model, "train": train,
            "kept": kept, "forget": loader(train, forget), "retain": loader(train, kept),
            "data": loader(train), "extra": extra, "seed": seed}  # fmt: skip


def run_method(case: dict, method: str, guard: float | None = None,
               repair_epochs: int | None = None):
    """The unlearned model, the seconds it took, and assd-auto's own verdict ("met" / "NOT met")."""
    model, task = case["model"], case["task"]
    sets = {"retain": case["retain"], **case["extra"]}
    start = time.perf_counter()
    if method == "retrain":
        torch.manual_seed(case["seed"])
        kept = Subset(case["train"], case["kept"])
        rows = hf_tiny.Rows(torch.stack([r["input_ids"] for r in kept]),
                            torch.stack([torch.as_tensor(r["labels"]) for r in kept]))  # fmt: skip
        out = hf_tiny.train(case["make"](), rows, epochs=EPOCHS[case["name"]], seed=case["seed"])
    elif method == "gradient-ascent":
        out = assd.get_method("gradient-ascent", task=task).unlearn(
            model, forget=case["forget"], retain=case["retain"]).model
    elif method == "assd-paper":
        out = assd.ASSD.paper(task=task).unlearn(model, forget=case["forget"],
                                                 data=case["data"]).model  # fmt: skip
    elif method == "assd":
        out = assd.ASSD(task=task).unlearn(model, forget=case["forget"],
                                           retain=case["retain"]).model  # fmt: skip
    else:
        options = {} if guard is None else {"guard": guard}
        if repair_epochs is not None:
            options["repair_epochs"] = repair_epochs
        result = assd.get_method("assd-auto", task=task, **options).unlearn(
            model, forget=case["forget"], retain=case["retain"], evaluate=sets)
        verdict = "met" if result.outcome.target["met"] else "NOT met"
        return result.model, time.perf_counter() - start, verdict
    return out, time.perf_counter() - start, ""


def changed_share(before, after) -> float | None:
    a, b = dict(before.named_parameters()), dict(after.named_parameters())
    if set(a) != set(b):
        return None
    changed = sum(int((a[n] != b[n]).sum()) for n in a)
    return changed / sum(p.numel() for p in a.values())


def judge(case: dict, model, base: dict, retrained: dict | None) -> dict:
    sets = {"forget": case["forget"], "retain": case["retain"], **case["extra"]}
    s = score_sets(model, sets, task=case["task"])
    if case["name"] == "bert":
        row = {"forget acc": s["forget"].accuracy, "retain acc": s["retain"].accuracy,
               "test acc": s["test"].accuracy}  # fmt: skip
        if retrained is not None:
            row["met"] = (abs(row["forget acc"] - retrained["forget acc"]) <= 0.05
                          and base["retain acc"] - row["retain acc"] <= 0.015)  # fmt: skip
        return row
    unseen = s["unseen"].row_losses.double()
    low, high = (float(torch.quantile(unseen, q)) for q in (0.05, 0.95))
    row = {"extracted": s["forget"].extraction, "secret loss": s["forget"].loss,
           "unseen 5-95": f"{low:.3g}-{high:.3g}", "unseen extracted": s["unseen"].extraction,
           "retain ppl": s["retain"].perplexity}  # fmt: skip
    if base:
        ppl = row["retain ppl"] / base["retain ppl"] - 1
        row["retain ppl change"] = ppl
        row["met"] = (row["extracted"] <= row["unseen extracted"] and low <= row["secret loss"]
                      <= high and ppl <= 0.02)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=["bert", "gpt2"])
    parser.add_argument("--guard", type=float, default=None, help="assd-auto's retain guard")
    parser.add_argument("--repair-epochs", type=int, default=None,
                        help="assd-auto's bound on repair epochs (default: its own, 25)")
    args = parser.parse_args()
    for name in args.models:
        rows = []
        for seed in args.seeds:
            case = setup(name, seed)
            base = judge(case, case["model"], {}, None)
            outs = {m: run_method(case, m, args.guard, args.repair_epochs) for m in METHODS}
            retrained = judge(case, outs["retrain"][0], base, None)
            rows.append([seed, "original", *_cells(base), "", "", ""])
            for m in METHODS:
                model, seconds, verdict = outs[m]
                got = judge(case, model, base, retrained)
                share = changed_share(case["model"], model)
                rows.append([seed, m, *_cells(got), verdict,
                             "" if share is None else f"{100 * share:.2f}", f"{seconds:.1f}"])
            head = ["seed", "method", *judge(case, case["model"], base, retrained).keys(),
                    "own verdict", "changed %", "s"]  # fmt: skip
        print(f"## {name}\n")
        print(markdown_table(head, [r + [""] * (len(head) - len(r)) for r in rows]))
        print()


def _cells(row: dict) -> list[str]:
    out = []
    for value in row.values():
        if isinstance(value, bool):
            out.append("met" if value else "MISSED")
        elif isinstance(value, float):
            out.append(f"{value:.4g}")
        else:
            out.append(str(value))
    return out


if __name__ == "__main__":
    main()
