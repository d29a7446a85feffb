"""``out += left.T @ right`` over a batch of rows: one product against one slice per thread.

The factorised per-sample squares of a ``Linear`` weight reduce over the batch
(``(B, out)^T (B, in)``, see ``assd.importance.persample.products``). Alternating in one process,
for the layer shapes of the flights MLP (134 features, 3 x 100, 3 classes) at
the CLI's batch of 1024 rows and at the sample estimator's 4096-row steps:

- ``one product``: ``out.addmm_(left.T, right)``;
- ``split``: ``assd.importance.persample.products.add_row_product_`` (one slice of rows per thread,
  one batched product, summed).

    python benchmarks/row_product.py [--rounds 5]
"""

from __future__ import annotations

import torch
from common import alternate, arguments, header, median, ratio

from assd.importance.persample.products import add_row_product_
from assd.reports import markdown_table

SHAPES = [(rows, i, o) for rows in (1024, 4096) for i, o in ((134, 100), (100, 100), (100, 3))]
CALLS = 200  # products per timing, so that one timing is not a few microseconds


def _time(n: int, i: int, o: int, *, rounds: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    left, right = torch.rand(n, o, generator=gen), torch.rand(n, i, generator=gen)
    out = torch.zeros(o, i)

    def one():
        for _ in range(CALLS):
            out.addmm_(left.T, right)

    def split():
        for _ in range(CALLS):
            add_row_product_(out, left, right)

    return alternate({"one product": one, "split": split}, rounds=rounds)


def run(*, rounds: int) -> str:
    rows = []
    for n, i, o in SHAPES:
        t = _time(n, i, o, rounds=rounds)
        rows.append([f"{n} x {o} x {i}", f"{1e3 * median(t['one product']) / CALLS:.3f}",
                     f"{1e3 * median(t['split']) / CALLS:.3f}",
                     ratio(t, "one product", "split").show(".2f", unit="x")])  # fmt: skip
    table = markdown_table(["rows x out x in", "one product ms", "split ms", "speed-up"], rows)
    return "\n".join([header("Row-reducing product: one call against a slice per thread"),
                      f"torch threads: {torch.get_num_threads()}", "", table, ""])  # fmt: skip


def main() -> None:
    args = arguments(__doc__, models=False)
    print(run(rounds=args.rounds))


if __name__ == "__main__":
    main()
