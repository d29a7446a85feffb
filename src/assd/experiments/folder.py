"""An experiment's --out: either new, or a folder an experiment made (shown by its marker).

An experiment writes ``results.jsonl``, ``table.md``, ``summary.json`` and
``figures/`` into its folder and resumes from ``results.jsonl``. So that it
never overwrites a user's ``table.md`` or appends to a user's
``results.jsonl``, :func:`claim_folder` accepts only a new or empty folder
(and marks it), a folder holding its marker :data:`EXPERIMENT_MARKER` from
the same kind of experiment, or one from an earlier version whose
``results.jsonl`` holds only experiment records.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> claim_folder(out, kind="errors")
    >>> claim_folder(out, kind="errors")  # a re-run resumes there
    >>> sorted(p.name for p in out.iterdir())
    ['.assd-experiment']
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..store.files import check_writable, write_atomic

__all__ = ["EXPERIMENT_MARKER", "claim_folder"]

EXPERIMENT_MARKER = ".assd-experiment"
_RECORD_KEYS = {"key", "config", "environment"}


def claim_folder(folder: str | os.PathLike, *, kind: str, flag: str = "--out") -> None:
    """Make sure ``folder`` may hold the results of a ``kind`` experiment; mark it.

    Raises:
        FileExistsError: ``folder`` is a file, a link, another kind of experiment's
            folder, or a folder of other files; nothing is changed.
        PermissionError: it cannot be written.
    """
    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise FileExistsError(
            f"{flag} {folder} is {'a link' if folder.is_symlink() else 'a file'}; an experiment "
            "writes a folder there. Choose a new path; nothing was changed."
        )
    check_writable(folder / "results.jsonl")  # fail now, not after the first cell
    marker = _read_marker(folder)
    if marker is not None:
        if marker.get("experiment") != kind:
            raise FileExistsError(
                f"{flag} {folder} holds the results of `assd experiment "
                f"{marker.get('experiment')}`, not of `assd experiment {kind}`; choose a new "
                "--out. Nothing was changed."
            )
        return
    if folder.is_dir() and any(folder.iterdir()) and not _earlier_experiment(folder):
        names = sorted(p.name for p in folder.iterdir())[:5]
        raise FileExistsError(
            f"{flag} {folder} is a folder an experiment did not make (no {EXPERIMENT_MARKER} "
            f"marker; it holds {names}); an experiment writes results.jsonl, table.md, "
            "summary.json and figures/ there and would replace files of yours. Choose a new "
            "or empty folder; nothing was changed."
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / EXPERIMENT_MARKER, json.dumps({"experiment": kind}), overwrite=False)


def _read_marker(folder: Path) -> dict | None:
    path = folder / EXPERIMENT_MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"experiment": "(unreadable marker)"}
    return marker if isinstance(marker, dict) else {"experiment": "(unreadable marker)"}


def _earlier_experiment(folder: Path) -> bool:
    """A folder of an earlier assd version: its results.jsonl holds only complete records."""
    path = folder / "results.jsonl"
    if path.is_symlink() or not path.is_file():
        return False
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if not data.endswith(b"\n"):
        return False
    try:
        records = [json.loads(line) for line in data.decode("utf-8").splitlines() if line]
    except ValueError:
        return False
    return bool(records) and all(isinstance(r, dict) and set(r) >= _RECORD_KEYS for r in records)
