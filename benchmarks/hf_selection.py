"""Why ASSD's selection is weak on the tiny transformers of ``examples/hf_tiny.py``.

For each seed of each model (trained as in ``benchmarks/hf_forget.py``), the
issue's four candidates, measured:

1. *alpha < 1 ("dampened but unchanged")*: ASSD's alpha, how many weights it
   selects and how many change value (``min(I_D / I_Df, 1) < 1``), and what
   lambda = 0 (zeroing the selection) changes against lambda = 1;
2. *the per-layer spread of I_Df / I_D*: per kind of parameter (embeddings,
   LayerNorm, attention, MLP, pooler and head), its share of ASSD's
   selections and its median and 99th-percentile ratio;
3. *embeddings and LayerNorm*: the strength axis with their ratios left out of
   the selection;
4. *the reference choice*: the selection with I_D on all rows against I_D on the
   retained rows (the same percentile), as an overlap.

The strength axis: alpha = a quantile of the ratios (lambda = 1) for the global
percentile (ASSD), the ratios normalised by their tensor's median, and the two
exclusions. For each, the strongest forgetting whose retained cost stays within
the issue's limit (BERT: retained accuracy at most 1.5 pp below the
original's; GPT-2: retained perplexity within 2 %).

    python benchmarks/hf_selection.py [--models bert gpt2] [--seeds 0]
"""

from __future__ import annotations

import argparse
import copy

import torch
from hf_forget import setup

import assd
from assd.reports import markdown_table
from assd.rule.dampening import adaptive_alpha, dampen_parameters_
from assd.verify.outcome import score_sets

QUANTILES = [0.995, 0.99, 0.98, 0.97, 0.95, 0.9, 0.8, 0.7, 0.5]
VARIANTS = ["global", "per tensor", "no embeddings/LayerNorm", "no LayerNorm"]


def kind(name: str) -> str:
    if "LayerNorm" in name or ".ln_" in name:
        return "LayerNorm"
    if "embeddings" in name or ".wte" in name or ".wpe" in name:
        return "embeddings"
    if "attention" in name or ".attn." in name:
        return "attention"
    if "pooler" in name or "classifier" in name or "lm_head" in name:
        return "pooler/head"
    return "MLP"


def importances(case: dict) -> dict:
    task, model = case["task"], case["model"]
    imp = {k: assd.compute_importance(model, case[k], estimator="sample", task=task)
           for k in ("forget", "retain", "data")}  # fmt: skip
    return {k: v.tensors for k, v in imp.items()}


def finite(t: torch.Tensor) -> torch.Tensor:
    return t[torch.isfinite(t)].double().flatten()


def selection(case: dict, imp: dict) -> tuple[str, list]:
    """The header line (alpha, selected, changed, reference overlap) and the per-kind rows."""
    f, r, d = imp["forget"], imp["retain"], imp["data"]
    n, k = len(case["train"]), len(case["forget"].dataset)
    alpha, _ = adaptive_alpha(f, r, n_forget=k, n_data=n)
    alpha_full, _ = adaptive_alpha(f, d, n_forget=k, n_data=n)
    sel = {name: f[name] > alpha * r[name] for name in f}
    full = {name: f[name] > alpha_full * d[name] for name in f}
    changed = sum(int((sel[m] & (r[m] / f[m] < 1)).sum()) for m in f)
    both = sum(int((sel[m] & full[m]).sum()) for m in f)
    total, chosen = sum(t.numel() for t in f.values()), sum(int(s.sum()) for s in sel.values())
    head = (f"ASSD alpha {alpha:.4g} (I_D on all rows: {alpha_full:.4g}); selected {chosen} of "
            f"{total} ({100 * chosen / total:.2f} %), changed {changed}; the two references "
            f"share {both} of {chosen} selections")  # fmt: skip
    rows = []
    for group in sorted({kind(m) for m in f}):
        names = [m for m in f if kind(m) == group]
        ratio = torch.cat([finite(f[m] / r[m]) for m in names])
        picked = sum(int(sel[m].sum()) for m in names)
        rows.append([group, sum(f[m].numel() for m in names), picked,
                     f"{100 * picked / max(chosen, 1):.0f}", f"{float(ratio.median()):.3g}",
                     f"{float(torch.quantile(ratio, 0.99)):.3g}"])  # fmt: skip
    return head, rows


def variant(imp: dict, name: str) -> tuple[dict, dict]:
    """The (forget, reference) importances whose ratio this variant ranks by."""
    f, r = dict(imp["forget"]), dict(imp["retain"])
    if name == "per tensor":
        r = {m: r[m] * float(finite(f[m] / r[m]).clamp(min=1e-30).median()) for m in r}
    left_out = {"no embeddings/LayerNorm": ("embeddings", "LayerNorm"),
                "no LayerNorm": ("LayerNorm",)}.get(name, ())  # fmt: skip
    f = {m: torch.zeros_like(t) if kind(m) in left_out else t for m, t in f.items()}
    return f, r


def dampened(case: dict, f: dict, r: dict, q: float, lam: float = 1.0) -> dict:
    alpha = float(torch.quantile(torch.cat([finite(f[m] / r[m]) for m in f]), q))
    model = copy.deepcopy(case["model"])
    params = dict(model.named_parameters())
    counts = dampen_parameters_(params, f, r, alpha=alpha, dampening=lam)
    s = score_sets(model, {"f": case["forget"], "r": case["retain"]}, task=case["task"])
    out = {"changed %": 100 * sum(c for c, _ in counts.values()) / sum(p.numel() for p in
                                                                       params.values())}
    if case["task"] == "causal-lm":
        return {**out, "extracted": s["f"].extraction, "secret loss": s["f"].loss,
                "retain ppl": s["r"].perplexity}  # fmt: skip
    return {**out, "forget acc": s["f"].accuracy, "retain acc": s["r"].accuracy}


def within(case: dict, base: dict, row: dict) -> bool:
    if case["task"] == "causal-lm":
        return row["retain ppl"] <= 1.02 * base["retain ppl"]
    return base["retain acc"] - row["retain acc"] <= 0.015


def forgot(case: dict, row: dict) -> float:
    """More is more forgotten: the secrets' loss, or minus the forget-class accuracy."""
    return row["secret loss"] if case["task"] == "causal-lm" else -row["forget acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bert", "gpt2"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    for name in args.models:
        for seed in args.seeds:
            case = setup(name, seed)
            imp = importances(case)
            head, rows = selection(case, imp)
            print(f"## {name}, seed {seed}: {head}\n")
            print(markdown_table(["kind", "elements", "selected", "share of selections %",
                                  "median ratio", "99th pct ratio"], rows))  # fmt: skip
            s = score_sets(case["model"], {"f": case["forget"], "r": case["retain"]},
                           task=case["task"])  # fmt: skip
            base = ({"retain ppl": s["r"].perplexity} if case["task"] == "causal-lm"
                    else {"retain acc": s["r"].accuracy})  # fmt: skip
            table, best = [], []
            for v in VARIANTS:
                f, r = variant(imp, v)
                got = {q: dampened(case, f, r, q) for q in QUANTILES}
                zero = dampened(case, f, r, QUANTILES[3], lam=0.0)
                table += [[v, q, *(f"{x:.4g}" for x in row.values())] for q, row in got.items()]
                ok = [(q, row) for q, row in got.items() if within(case, base, row)]
                q, row = max(ok, key=lambda e: forgot(case, e[1])) if ok else (None, None)
                best.append([v, q if q is not None else "none",
                             *((f"{x:.4g}" for x in row.values()) if row else ["-"] * 4),
                             " ".join(f"{x:.4g}" for x in zero.values())])  # fmt: skip
            cols = list(got[QUANTILES[0]].keys())
            print("\nStrength axis (alpha = this quantile of the ratios, lambda = 1):\n")
            print(markdown_table(["selection", "quantile", *cols], table))
            print(f"\nStrongest forgetting within the retained limit; last column: lambda = 0 "
                  f"at quantile {QUANTILES[3]} ({', '.join(cols)}):\n")  # fmt: skip
            print(markdown_table(["selection", "quantile", *cols, "lambda 0"], best))
            print()


if __name__ == "__main__":
    main()
