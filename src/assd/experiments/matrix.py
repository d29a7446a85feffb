"""The forgetting matrix: every method on every cell and seed, judged against retraining.

A run (:func:`judge`) meets its cell's criterion when its Df accuracy lies
within the criterion's ``df`` points of retraining's on the same seed and its
Dr accuracy (retain test split) is at most ``dr`` points below the original's
(:data:`assd.experiments.matrix_cells.LIMITS`). Cost is the method's wall time
(the SSD family's training-set importance pass included) and its ratio to
retraining's on the same seed.

:func:`summarize` counts met runs per method and cell group, checks
``assd-auto``'s own verdict against the retraining check and aggregates each
cell; :func:`matrix_markdown` renders it.

Example:
    >>> original = {"retain_test_acc": 0.98, "df_acc": 0.95}
    >>> retrain = {"retain_test_acc": 0.97, "df_acc": 0.20, "seconds": 8.0}
    >>> got = {"retain_test_acc": 0.965, "df_acc": 0.31, "seconds_total": 2.0}
    >>> row = judge_one(got, retrain, original, "sub-class")
    >>> row["df_gap"], row["dr_drop"], row["met"], row["cost_ratio"]
    (11.0, 1.5, True, 0.25)
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .matrix_cells import CELLS, LIMITS, METHODS, VARIANTS, Cell

__all__ = [
    "MARKER",
    "judge",
    "judge_one",
    "make_keys",
    "matrix_markdown",
    "prepare_folder",
    "summarize",
    "write_matrix",
]

MARKER = "matrix-folder.json"
FORMAT = 1
GROUPS = ["digits full-class", "digits sub-class", "digits random", "table", "transformer"]


def make_keys(cells: list[Cell], seeds: list[int], methods: list[str]) -> list[dict]:
    """Units of work, cell-major then seed: ``original`` and ``retrain`` first (the others
    are judged against them)."""
    order = ["original", "retrain", *[m for m in methods if m not in ("original", "retrain")]]
    return [{"cell": c.id, "seed": s, "method": m} for c in cells for s in seeds for m in order]


def judge_one(got: dict, retrain: dict, original: dict, criterion: str) -> dict:
    """Df gap and Dr drop (points), met or missed, and cost of one run."""
    df_limit, dr_limit = LIMITS[criterion]
    df_gap = round(100 * abs(got["df_acc"] - retrain["df_acc"]), 6)
    dr_drop = round(100 * (original["retain_test_acc"] - got["retain_test_acc"]), 6)
    seconds = got.get("seconds_total", got.get("seconds"))
    base = retrain.get("seconds_total", retrain.get("seconds"))
    ratio = round(seconds / base, 6) if seconds is not None and base else None
    return {"df_gap": df_gap, "dr_drop": dr_drop,
            "met": df_gap <= df_limit and dr_drop <= dr_limit,
            "df_limit": df_limit, "dr_limit": dr_limit,
            "seconds": seconds, "cost_ratio": ratio}  # fmt: skip


def judge(records: list[dict]) -> list[dict]:
    """One row per finished run (not the original) whose seed has retraining and the original."""
    by = {(r["key"]["cell"], r["key"]["seed"], r["key"]["method"]): r for r in records}
    cells = {c.id: c for c in CELLS}
    rows = []
    for (cell_id, seed, method), record in sorted(by.items(), key=_order):
        retrain, original = by.get((cell_id, seed, "retrain")), by.get((cell_id, seed, "original"))
        if method == "original" or retrain is None or original is None:
            continue
        cell = cells[cell_id]
        rows.append({
            "cell": cell_id, "group": cell.group, "criterion": cell.criterion, "seed": seed,
            "method": method, "df_acc": record["df_acc"], "retrain_df_acc": retrain["df_acc"],
            "dr_acc": record["retain_test_acc"], **judge_one(record, retrain, original,
                                                              cell.criterion),
            "member_share": record.get("member_share"), "mia": record.get("mia"),
            "claimed_met": record.get("claimed_met"),
            "claimed_forgotten": record.get("claimed_forgotten"),
            "verdict": record.get("verdict"),
        })  # fmt: skip
    return rows


def _order(item) -> tuple:
    (cell_id, seed, method), _ = item
    ids = [c.id for c in CELLS]
    return (ids.index(cell_id) if cell_id in ids else len(ids), cell_id, _method_rank(method),
            seed)


def _method_rank(method: str) -> tuple:
    names = [*METHODS, *VARIANTS]
    return (names.index(method) if method in names else len(names), method)


def summarize(rows: list[dict]) -> dict:
    """Met counts per method and group, assd-auto's verdict check, and per-cell aggregates."""
    methods = sorted({r["method"] for r in rows}, key=_method_rank)
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    counts = {m: {g: _count([r for r in rows if r["method"] == m and r["group"] == g])
                  for g in groups} for m in methods}  # fmt: skip
    for m in methods:
        counts[m]["all"] = _count([r for r in rows if r["method"] == m])
    cost = {m: _median([r["cost_ratio"] for r in rows if r["method"] == m]) for m in methods}
    misses = [r for r in rows if r["method"] == "assd-auto" and not r["met"]]
    return {"counts": counts, "cost": cost, "verdicts": verdict_check(rows),
            "cells": per_cell(rows), "misses": misses}  # fmt: skip


def _count(rows: list[dict]) -> dict:
    return {"met": sum(r["met"] for r in rows), "runs": len(rows)}


def verdict_check(rows: list[dict], method: str = "assd-auto") -> dict:
    """How often ``method``'s verdict says what the retraining check says, per group and in
    all; ``met_far``: runs it called met whose Df gap exceeds twice the criterion."""
    out = {}
    for group in [*GROUPS, "all"]:
        mine = [r for r in rows if r["method"] == method and group in ("all", r["group"])]
        said = [r for r in mine if r["claimed_met"] is not None]
        if not mine:
            continue
        out[group] = {
            "runs": len(mine), "with_verdict": len(said),
            "agree": sum(r["claimed_met"] == r["met"] for r in said),
            "said_met_missed": sum(r["claimed_met"] and not r["met"] for r in said),
            "said_missed_met": sum(r["met"] and not r["claimed_met"] for r in said),
            "met_far": sum(bool(r["claimed_met"]) and r["df_gap"] > 2 * r["df_limit"]
                           for r in said),
            "with_forgotten": sum(r.get("claimed_forgotten") is not None for r in mine),
            "forgotten": sum(bool(r.get("claimed_forgotten")) for r in mine),
        }  # fmt: skip
    return out


def per_cell(rows: list[dict]) -> list[dict]:
    """Per (cell, method): met count, mean and worst Df gap, mean Dr drop, mean membership
    share (None where any run lacks it), median SSD-protocol MIA (%), median seconds and
    median cost ratio."""
    out = []
    for key in dict.fromkeys((r["cell"], r["method"]) for r in rows):
        mine = [r for r in rows if (r["cell"], r["method"]) == key]
        shares = [r["member_share"] for r in mine]
        ratios = [r["cost_ratio"] for r in mine if r["cost_ratio"] is not None]
        out.append({
            "cell": key[0], "method": key[1], "group": mine[0]["group"], **_count(mine),
            "df_acc": _mean([100 * r["df_acc"] for r in mine]),
            "retrain_df_acc": _mean([100 * r["retrain_df_acc"] for r in mine]),
            "df_gap": _mean([r["df_gap"] for r in mine]),
            "df_gap_max": max(r["df_gap"] for r in mine),
            "dr_drop": _mean([r["dr_drop"] for r in mine]),
            "member_share": None if None in shares else _mean(shares),
            "mia": _median([None if r.get("mia") is None else 100 * r["mia"] for r in mine]),
            "seconds": statistics.median(r["seconds"] for r in mine),
            "cost_ratio": statistics.median(ratios) if ratios else None,
        })  # fmt: skip
    return out


def _median(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 6)


def matrix_markdown(summary: dict, *, title: str = "Forgetting matrix") -> str:
    """The summary as markdown: met counts, assd-auto's verdicts, the per-cell table."""
    from .matrix_report import render

    return render(summary, title=title)


def prepare_folder(folder: str | Path, settings: dict) -> None:
    """Claim ``folder`` for a matrix run (a marker file), or check that it is one with the
    same settings. Refuses a folder that holds anything else."""
    from ..store.files import write_atomic

    folder = Path(folder)
    marker = folder / MARKER
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"--out {folder} is a file; give a folder for the matrix.")
    if folder.is_dir() and any(folder.iterdir()) and not marker.is_file():
        raise FileExistsError(
            f"--out {folder} is not a matrix folder (no {MARKER}) and is not empty; choose a "
            "new or empty folder, or the folder of an earlier matrix run to resume it. Nothing "
            "was changed."
        )
    wanted = {"format": FORMAT, "settings": json.loads(json.dumps(settings))}
    if marker.is_file():
        stored = json.loads(marker.read_text(encoding="utf-8"))
        if stored != wanted:
            raise ValueError(
                f"--out {folder} holds a matrix run with other settings ({stored.get('settings')}"
                "); resume it with the same --epochs and --references, or choose another --out."
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(marker, json.dumps(wanted, indent=1, sort_keys=True))


def write_matrix(folder: str | Path, records: list[dict], *, command: str = "") -> dict:
    """Judge every record in the folder; write ``matrix.json`` and ``matrix.md`` atomically."""
    from ..store.files import write_atomic

    rows = judge(records)
    summary = summarize(rows)
    text = matrix_markdown(summary)
    if command:
        text = f"{text.rstrip()}\n\nMade by: `{command}`\n"
    folder = Path(folder)
    write_atomic(folder / "matrix.json",
                 json.dumps({"summary": summary, "runs": rows}, indent=1, allow_nan=True))
    write_atomic(folder / "matrix.md", text)
    return {"summary": summary, "runs": rows, "markdown": text}
