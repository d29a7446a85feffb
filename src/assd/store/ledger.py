"""An append-only, hash-chained record of what a model was made to forget.

A ledger is a list of entries, one JSON object per line of ``ledger.jsonl`` in
a model folder. Entry 0 is the ``base`` (the model as trained: its weights
fingerprint, recipe and training-data digest, and a random salt for hashed
ids); every later entry is a ``forget`` request or a ``retrain``. Each entry
holds its position (``index``), the ``parent_head`` (the hash of the entry
before it: the head of the parent folder's ledger), the weights fingerprints
``weights_before`` / ``weights_after`` and its own ``hash``: SHA-256 of its
canonical JSON without the hash. :meth:`Ledger.verify` refuses, naming the
entry, a ledger whose entry was edited, removed, reordered or taken from
another chain, and one whose last entry does not describe the weights beside it.

The chain has no secret: someone who rewrites an entry *and* recomputes every
later hash, the model's recorded head and the weights is not detected. Keep
the head (:attr:`Ledger.head`) somewhere else to detect that too.

Row ids are kept as given (strings, any characters), or with ``hashed=True``
as HMAC-SHA256 digests keyed by the ledger's salt, so the file holds no row
identifier; matching a table's ids against it needs the table.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 2)
    >>> ledger = Ledger.start(model, recipe={"epochs": 3})
    >>> entry = ledger.append("forget", weights_before=ledger.weights, weights_after=ledger.weights,
    ...                       rows=ledger.rows(["007", "a, b"], hashed=True))
    >>> ledger.forgotten(["7", "007", "a, b"]).tolist()
    [False, True, True]
    >>> Ledger.loads(ledger.dumps()).verify(model) is None
    True
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

import numpy as np
from torch import nn

from .fingerprint import fingerprint

__all__ = ["LEDGER_FILE", "Ledger", "LedgerError"]

LEDGER_FILE = "ledger.jsonl"
KINDS = ("base", "forget", "retrain")


class LedgerError(ValueError):
    """A ledger that fails verification; ``index`` is the entry at fault."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


def canonical(body: dict) -> str:
    """The JSON text an entry's hash is taken over (sorted keys, ASCII, no spaces)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)  # fmt: skip


def entry_hash(entry: dict) -> str:
    body = canonical({k: v for k, v in entry.items() if k != "hash"})
    return hashlib.sha256(body.encode()).hexdigest()


class Ledger:
    """The entries of one model's ledger (see the module docstring)."""

    def __init__(self, entries: list[dict], source: str = "ledger"):
        self.entries = entries
        self.source = source

    # -- making ---------------------------------------------------------------------------
    @classmethod
    def start(cls, model: nn.Module, *, recipe: dict | None = None, data: dict | None = None,
              baseline: dict | None = None, **fields) -> Ledger:  # fmt: skip
        """A new ledger whose base entry describes ``model`` as trained (``fields``: more to
        keep in it)."""
        ledger = cls([])
        ledger.append("base", weights_before=None, weights_after=fingerprint(model),
                      recipe=recipe or {}, data=data or {}, baseline=baseline or {},
                      salt=secrets.token_hex(16), **fields)  # fmt: skip
        return ledger

    def append(self, kind: str, **fields) -> dict:
        """Add an entry (``index``, ``time``, ``parent_head`` and ``hash`` are filled in)."""
        if kind not in KINDS:
            raise ValueError(f"unknown ledger entry kind {kind!r}; use one of {KINDS}.")
        entry = {"index": len(self.entries), "kind": kind,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "parent_head": self.head, **_json_safe(fields)}  # fmt: skip
        entry["hash"] = entry_hash(entry)
        self.entries.append(entry)
        return entry

    def copy(self) -> Ledger:
        return Ledger(copy.deepcopy(self.entries), self.source)

    # -- reading and writing ---------------------------------------------------------------
    def dumps(self) -> str:
        return "".join(canonical(e) + "\n" for e in self.entries)

    @classmethod
    def loads(cls, text: str, source: str = "ledger") -> Ledger:
        """Parse ``ledger.jsonl`` text (not verified: call :meth:`verify`)."""
        entries = []
        for number, line in enumerate(text.splitlines()):
            if not line.strip():
                raise LedgerError(f"{source}: line {number + 1} is blank; {_RESTORE}", number)
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise LedgerError(f"{source}: entry {number} is not JSON ({error}); {_RESTORE}",
                                  number) from None  # fmt: skip
            if not isinstance(entry, dict):
                raise LedgerError(f"{source}: entry {number} is not an object; {_RESTORE}", number)
            entries.append(entry)
        return cls(entries, source)

    @classmethod
    def read(cls, folder: str | os.PathLike) -> Ledger | None:
        """The ledger of a model folder (not verified), or None if it has none."""
        path = Path(folder) / LEDGER_FILE
        if not path.is_file():
            return None
        return cls.loads(path.read_text(encoding="utf-8"), source=str(path))

    def write(self, path: str | os.PathLike) -> None:
        """Write the ledger to ``path`` (plain write: used inside an atomic model folder)."""
        Path(path).write_text(self.dumps(), encoding="utf-8")

    # -- checking --------------------------------------------------------------------------
    def verify(self, model: nn.Module | None = None, *, head: str | None = None) -> None:
        """Raise :class:`LedgerError` naming the first entry that breaks the chain.

        Args:
            model: the weights the ledger should end at (last ``weights_after``).
            head: the head recorded beside the ledger (the model's ``model.json``).
        """
        if not self.entries:
            raise LedgerError(f"{self.source} is empty; {_RESTORE}", 0)
        previous = None
        for i, entry in enumerate(self.entries):
            self._check_entry(i, entry, previous)
            previous = entry
        if head is not None and head != self.head:
            raise LedgerError(self._where(len(self.entries) - 1, "is not the head recorded in "
                              "model.json: entries were removed from the end or added"),
                              len(self.entries) - 1)  # fmt: skip
        if model is not None and fingerprint(model) != self.weights:
            raise LedgerError(self._where(len(self.entries) - 1, "does not end at the weights "
                              "in this folder (the ledger belongs to another model, or was "
                              "truncated)"), len(self.entries) - 1)  # fmt: skip

    def _check_entry(self, i: int, entry: dict, previous: dict | None) -> None:
        problems = []
        if entry.get("index") != i:
            problems.append(f"says it is entry {entry.get('index')!r} (entries were removed or "
                            "reordered)")  # fmt: skip
        if entry.get("hash") != entry_hash(entry):
            problems.append("does not match its hash (it was edited)")
        parent = None if previous is None else previous.get("hash")
        if entry.get("parent_head") != parent:
            problems.append("does not follow the entry before it (a removed, reordered or "
                            "swapped parent)")  # fmt: skip
        if previous is not None and entry.get("weights_before") != previous.get("weights_after"):
            problems.append("starts from other weights than the entry before it ended at")
        if (i == 0) != (entry.get("kind") == "base"):
            problems.append("is not where a ledger's base entry belongs")
        if problems:
            raise LedgerError(self._where(i, "; ".join(problems)), i)

    def _where(self, i: int, problem: str) -> str:
        entry = self.entries[i]
        return (f"{self.source}: entry {i} ({entry.get('kind')}, {entry.get('time')}) "
                f"{problem}. The ledger is refused; {_RESTORE}")  # fmt: skip

    # -- reading entries -------------------------------------------------------------------
    @property
    def head(self) -> str | None:
        return self.entries[-1]["hash"] if self.entries else None

    @property
    def weights(self) -> str | None:
        return self.entries[-1].get("weights_after") if self.entries else None

    @property
    def salt(self) -> str:
        return self.entries[0]["salt"]

    def hash_ids(self, ids) -> list[str]:
        """HMAC-SHA256 of each id (UTF-8) keyed by this ledger's salt."""
        key = bytes.fromhex(self.salt)
        return [hmac.new(key, str(i).encode("utf-8"), hashlib.sha256).hexdigest() for i in ids]

    def rows(self, ids, *, hashed: bool = False) -> dict:
        """The ``rows`` field of an entry: the ids as given, or their salted hashes."""
        ids = [str(i) for i in ids]
        return {"hashed": hashed, "ids": self.hash_ids(ids) if hashed else ids}

    def keys(self, ids, entry: dict) -> list[str]:
        """``ids`` as ``entry`` stores them (hashed if it hashes)."""
        ids = [str(i) for i in ids]
        return self.hash_ids(ids) if entry["rows"]["hashed"] else ids

    def requests(self) -> list[dict]:
        return [e for e in self.entries if e["kind"] == "forget"]

    def entry_mask(self, entry: dict, ids) -> np.ndarray:
        """Which of ``ids`` the ``entry`` forgot."""
        stored = set(entry["rows"]["ids"])
        return np.fromiter((k in stored for k in self.keys(ids, entry)), bool, len(ids))

    def forgotten(self, ids) -> np.ndarray:
        """Which of ``ids`` any request of this ledger forgot (matched by id)."""
        ids = [str(i) for i in ids]
        mask = np.zeros(len(ids), dtype=bool)
        for entry in self.requests():
            mask |= self.entry_mask(entry, ids)
        return mask

    def n_forgotten(self) -> int:
        return len({(e["rows"]["hashed"], i) for e in self.requests() for i in e["rows"]["ids"]})

    def baseline_entry(self) -> dict:
        """The last full training: the base entry or the latest retrain."""
        return next(e for e in reversed(self.entries) if e["kind"] in ("base", "retrain"))

    def drift(self) -> dict:
        """Cumulative drop (points) on retained and held-out rows since the last training."""
        last = self.entries[-1]
        return dict(last.get("drift") or {"retain": 0.0, "test": 0.0})

    @property
    def retrain_due(self) -> bool:
        return bool(self.entries[-1].get("retrain_due"))


_RESTORE = ("restore the model folder as assd wrote it (a ledger is never edited by hand), "
            "or retrain the model.")  # fmt: skip


def _json_safe(value):
    """Fields as plain JSON: NaN/inf become None, tuples lists, numpy scalars numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
