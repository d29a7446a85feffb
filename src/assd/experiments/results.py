"""An append-only JSON-lines log of results that survives interruption.

Every record is one line, written whole under an exclusive lock and fsynced
at once. A line cut short by a crash is ignored on reading and
cut off before the next append, so a resumed run neither loses nor
duplicates finished work; two runs appending to one log wait for each other,
so neither cuts off the other's line half-way.

Example:
    >>> import tempfile, pathlib
    >>> log = ResultLog(pathlib.Path(tempfile.mkdtemp()) / "results.jsonl")
    >>> log.append({"key": {"method": "assd", "seed": 0}, "acc": 0.9})
    >>> log.done()
    {'{"method": "assd", "seed": 0}'}
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..store.files import not_writable

__all__ = ["ResultLog", "key_of"]

log = logging.getLogger("assd")


def key_of(record_or_key: dict) -> str:
    """Canonical string of a record's ``key`` (or of a key dict itself)."""
    key = record_or_key.get("key", record_or_key)
    return json.dumps(key, sort_keys=True)


class ResultLog:
    """Records in ``path``, one JSON object per line, each with a ``key`` dict."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def records(self) -> list[dict]:
        """Every complete record, in order; a torn last line is skipped."""
        if not self.path.is_file():
            return []
        out = []
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
                if number == len(lines) and not line.endswith("\n"):
                    log.warning("%s: ignoring a torn last line (interrupted run)", self.path)
                    continue
                raise ValueError(
                    f"{self.path} line {number} is not valid JSON; the results file is "
                    "damaged. Move it away to start over."
                ) from None
            out.append(record)
        return out

    def done(self) -> set[str]:
        """Keys (see :func:`key_of`) of every finished record."""
        return {key_of(r) for r in self.records()}

    def append(self, record: dict) -> None:
        """Write one record durably (after cutting off any torn last line)."""
        if "key" not in record:
            raise ValueError("a result record needs a 'key' dict that identifies it.")
        data = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except PermissionError as error:
            raise not_writable(self.path, error) from None
        try:
            _lock(fd)  # another run appending to the same log waits; its line stays whole
            self._drop_torn_tail()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except PermissionError as error:
            raise not_writable(self.path, error) from None
        finally:
            os.close(fd)  # closing releases the lock

    def _drop_torn_tail(self) -> None:
        """Cut off a torn last line; a complete last record without its newline gets one."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as handle:
            data = handle.read()
            if data.endswith(b"\n"):
                return
            tail = data[data.rfind(b"\n") + 1 :]
            try:
                json.loads(tail)
            except ValueError:
                handle.truncate(len(data) - len(tail))
                return
            handle.write(b"\n")


def _lock(fd: int) -> None:
    """An exclusive ``flock`` on the log while one record is appended (a torn tail is
    cut only while no other writer can be half-way through a line); none where the
    system or file system has no such locks."""
    try:
        import fcntl
    except ImportError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as error:
        log.debug("cannot lock %s (%s); appending without the lock", fd, error)
