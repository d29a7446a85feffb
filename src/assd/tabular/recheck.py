"""Re-checking earlier deletion requests on a later model, with their own evidence.

A request's evidence is its forget rows' accuracy before and after, and which
of those rows the model classified correctly before and right after it
(``correct_before`` / ``correct_after``: one ``"0"``/``"1"`` per forgotten id,
in the ledger's order). A row correct before and misclassified after was
forgotten by that evidence. On a later model the same rows are scored again:
a forgotten row that is classified correctly again "came back".

Example:
    >>> came_back("111", "010", np.array([True, True, False]))
    array([ True, False, False])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..batches import TensorData
from ..metrics import predict
from ..store.ledger import Ledger

__all__ = ["as_text", "came_back", "correct_flags", "own_evidence", "recheck"]


def correct_flags(model, rows, positions: np.ndarray) -> np.ndarray:
    """Whether ``model`` classifies each of ``rows[positions]`` correctly."""
    if not len(positions):
        return np.zeros(0, dtype=bool)
    index = np.asarray(positions)
    data = TensorData(rows.x[index], rows.y[index], batch_size=4096)
    pred, target = predict(model, data)
    return (pred == target).numpy()


def came_back(before: str, after: str, correct_now: np.ndarray) -> np.ndarray:
    """Rows their request forgot (correct before it, wrong right after) that are correct now."""
    return _flags(before) & ~_flags(after) & correct_now


def _flags(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")


def as_text(flags: np.ndarray) -> str:
    return "".join("1" if f else "0" for f in flags)


def own_evidence(before, after, rows, ids: list[str], earlier: np.ndarray, repeated: list[str]):
    """The training rows this request forgot (in the order given) and their
    ``correct_before`` / ``correct_after`` flags on the models ``before`` and ``after``."""
    usable = ~rows.test & (rows.y >= 0).numpy() & ~(earlier & ~_isin(rows.ids, repeated))
    where = pd.Index(rows.ids, dtype=object).get_indexer(ids)
    keep = (where >= 0) & usable[np.maximum(where, 0)]
    forgot = [i for i, k in zip(ids, keep, strict=True) if k]
    flags = {f"correct_{name}": as_text(correct_flags(model, rows, where[keep]))
             for name, model in (("before", before), ("after", after))}  # fmt: skip
    return forgot, flags


def recheck(ledger: Ledger, model, rows) -> list[dict]:
    """Every earlier request of ``ledger`` re-checked on ``model`` with its own evidence.

    Rows of a request that ``rows`` does not hold cannot be checked; they are counted
    under ``missing``. Each result holds ``came_back_ids`` (the ids as the table
    has them), which callers report and leave out of the ledger. Requests older than
    the last retraining are scored too, but nothing "comes back" there: the model was
    trained without their rows (``retrained_without``).
    """
    hashed = None
    out = []
    retrained = ledger.baseline_entry()["index"]
    for entry in ledger.requests():
        if entry["rows"]["hashed"]:
            hashed = ledger.hash_ids(rows.ids) if hashed is None else hashed
            keys = hashed
        else:
            keys = rows.ids
        stored = entry["rows"]["ids"]
        position = pd.Index(stored, dtype=object).get_indexer(pd.Index(keys, dtype=object))
        present = np.flatnonzero(position >= 0)
        correct = correct_flags(model, rows, present)
        own = {k: "".join(entry["evidence"][k][p] for p in position[present])
               for k in ("correct_before", "correct_after")}  # fmt: skip
        back = came_back(own["correct_before"], own["correct_after"], correct)
        if entry["index"] < retrained:
            back[:] = False
        then = own["correct_after"].count("1") / len(present) if len(present) else None
        out.append({
            "entry": entry["index"],
            "checked": len(present),
            "missing": len(stored) - len(present),
            "forget_accuracy_then": None if then is None else round(then, 6),
            "forget_accuracy_now": round(float(correct.mean()), 6) if len(present) else None,
            "forgotten_then": int((_flags(own["correct_before"]) & ~_flags(own["correct_after"]))
                                  .sum()),
            "came_back": int(back.sum()),
            "came_back_keys": [stored[p] for p in position[present][back]],
            "came_back_ids": [str(i) for i in rows.ids[present][back]],
            "holds": bool(len(present)) and not back.any(),
            **({"retrained_without": True} if entry["index"] < retrained else {}),
        })  # fmt: skip
    return out


def _isin(values: np.ndarray, candidates) -> np.ndarray:
    return np.asarray(pd.Index(values, dtype=object).isin(list(candidates)), dtype=bool)
