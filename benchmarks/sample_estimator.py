"""The ``sample`` estimator (per-sample squared gradients) against the ``batch`` one.

Both make one pass over the same data; the ratio is what batch-size
invariance and exact subtraction (``Importance.without``) cost. The last
column says which path of the per-sample engine (``assd.importance.persample.engine``) took how
many of the parameters: ``factorised`` (Linear on vectors: no per-sample
gradients at all), ``hooks`` (per-layer per-sample gradients from hooks),
``torch.func`` (``vmap``) and ``loop`` (one backward per sample).

    python benchmarks/sample_estimator.py [--models mlp cnn resnet18 vit-b bert]
                                          [--rounds 5] [--rows N] [--quick]
"""

from __future__ import annotations

from common import alternate, arguments, cases, header, judged, median, n_params, ratio

import assd
from assd.reports import markdown_table

SAMPLES = {"cnn": 1437, "mlp": 20000, "resnet18": 64, "vit-b": 8, "bert": 256}  # rows per pass
TARGETS = {"mlp": 1.5, "cnn": 2.0, "resnet18": 2.0, "vit-b": 2.0}  # bert: it must run
MODELS = ["mlp", "cnn", "resnet18", "vit-b", "bert"]


def bert_case(rows: int):
    """A tiny BERT classifier built from a config (no download), padded token batches."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=256,
                        max_position_embeddings=64, num_labels=3)  # fmt: skip
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 1000, (rows, 32), generator=g)
    lengths = torch.randint(8, 33, (rows,), generator=g)
    mask = (torch.arange(32) < lengths[:, None]).long()
    ids = ids * mask
    labels = torch.randint(0, 3, (rows,), generator=g)
    data = [{"input_ids": ids[s : s + 32], "attention_mask": mask[s : s + 32],
             "labels": labels[s : s + 32]} for s in range(0, rows, 32)]  # fmt: skip
    return "tiny BERT (2 x 128, 32 tokens)", model, data, 32


def measure(name: str, *, rounds: int, rows: int) -> dict:
    if name == "bert":
        title, model, data, batch = bert_case(rows)
    else:
        case = cases()[name]
        case.n_data = rows
        title, model, data, batch = case.name, case.model(), case.loaders()[0], case.batch_size
    last = {}

    def sample():
        last["imp"] = assd.compute_importance(model, data, estimator="sample", fingerprint=False)

    times = alternate(
        {
            "batch": lambda: assd.compute_importance(model, data, fingerprint=False,
                                                     estimator="batch"),
            "sample": sample,
        },
        rounds=rounds,
    )
    counts = last["imp"].path_counts()
    total = sum(counts.values())
    paths = ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in sorted(counts.items()))
    return {"name": name, "title": title, "params": n_params(model), "rows": rows,
            "batch": batch, "times": {k: median(v) for k, v in times.items()},
            "ratio": ratio(times, "sample", "batch"), "paths": paths}  # fmt: skip


def run(*, models: list[str], rounds: int, scale: str, n_rows: int | None = None) -> str:
    shrink = 8 if scale == "quick" else 1
    results = [measure(m, rounds=rounds, rows=n_rows or max(SAMPLES[m] // shrink, 8))
               for m in models]  # fmt: skip
    rows = []
    for r in results:
        target = TARGETS.get(r["name"])
        cell = (judged(r["ratio"], target, at_most=True, unit="x") if target
                else r["ratio"].show(".2f", unit="x") + " (runs)")  # fmt: skip
        rows.append([r["title"], f"{r['params']:,}", r["rows"], r["batch"],
                     f"{r['times']['batch']:.3f}", f"{r['times']['sample']:.3f}", cell,
                     f"≤ {target}x" if target else "runs", r["paths"]])  # fmt: skip
    head = ["model", "params", "rows", "batch", "batch s", "sample s", "sample / batch",
            "target", "per-sample paths (share of parameters)"]  # fmt: skip
    return "\n".join([header("Sample estimator against batch estimator"),
                      markdown_table(head, rows), ""])  # fmt: skip


def _rows_option(parser) -> None:
    parser.add_argument("--rows", type=int, default=None,
                        help="Rows per pass, for every model (default: SAMPLES).")  # fmt: skip


def main() -> None:
    args = arguments(__doc__, extra=_rows_option)
    models = args.models if args.models != ["cnn", "mlp", "resnet18", "vit-b"] else MODELS
    print(run(models=models, rounds=args.rounds, scale=args.scale, n_rows=args.rows))


if __name__ == "__main__":
    main()
