"""Result records grouped for the report tables: by setting, then by method, then by seed."""

from __future__ import annotations

from collections import defaultdict

__all__ = ["group_records"]


def group_records(records: list[dict], keys: tuple[str, ...]) -> dict:
    """``{(record["key"][k] for k in keys): {method: {seed: record}}}``, groups and methods
    in the order they first appear (a seed recorded twice keeps its last record).

    Example:
        >>> rows = [{"key": {"rate": 1, "method": "a", "seed": 0}},
        ...         {"key": {"rate": 1, "method": "a", "seed": 1}},
        ...         {"key": {"rate": 2, "method": "b", "seed": 0}}]
        >>> grouped = group_records(rows, ("rate",))
        >>> {g: {m: sorted(s) for m, s in ms.items()} for g, ms in grouped.items()}
        {(1,): {'a': [0, 1]}, (2,): {'b': [0]}}
    """
    out: dict = defaultdict(lambda: defaultdict(dict))
    for record in records:
        key = record["key"]
        out[tuple(key[k] for k in keys)][key["method"]][key["seed"]] = record
    return out
