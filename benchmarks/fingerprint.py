"""The weight fingerprint: one SHA-256 stream against the parallel SHA-256 tree.

Alternating rounds on ViT-B's weights (343 MB): the stream of earlier
versions, and ``assd.fingerprint`` with 1, 2 and 4 threads.

    python benchmarks/fingerprint.py [--rounds 5]
"""

from __future__ import annotations

import importlib

from common import alternate, arguments, cases, header, median, ratio

from assd.reports import markdown_table

fingerprint = importlib.import_module("assd.store.fingerprint")


def run(*, rounds: int) -> str:
    model = cases()["vit-b"].model()
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    conditions = {"stream": lambda: fingerprint._stream_sha256(model)}
    for n in (1, 2, 4):
        conditions[f"tree, {n} thread(s)"] = lambda n=n: fingerprint.fingerprint(model, threads=n)
    times = alternate(conditions, rounds=rounds)
    rows = [[name, f"{median(t):.3f}", f"{size / median(t) / 1e9:.2f}",
             ratio(times, "stream", name).show(".2f", unit="x")]
            for name, t in times.items()]  # fmt: skip
    return "\n".join([header("Weight fingerprint (ViT-B, %.0f MB)" % (size / 1e6)),
                      markdown_table(["hash", "seconds", "GB/s", "speed-up over stream"], rows),
                      ""])  # fmt: skip


def main() -> None:
    args = arguments(__doc__, models=False)
    print(run(rounds=args.rounds))


if __name__ == "__main__":
    main()
