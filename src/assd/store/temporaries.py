"""Temporaries assd makes beside an output, and how a later run knows its own leftovers.

Every temporary is a hidden folder ``.NAME.TOKEN.tmp`` beside the output
``NAME`` (a long ``NAME`` is cut short there), where ``TOKEN`` is random. Its
first content is a record file, :data:`RECORD`, holding that token, the
output's name, the process id and the host. The work happens inside it:
``work`` becomes the new output, ``old`` holds the output being replaced
while a swap without ``renameat2`` is under way.

A later run removes a temporary only when that record is present, names the
same token and output, and its process no longer runs on this host
(:func:`clean_stale`). A file or folder whose name merely looks like a
temporary, without such a record, is never touched.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> holder = new_holder(root / "out")
    >>> read_record(holder, root / "out")["output"]
    'out'
    >>> (root / ".out.0123456789abcdef.tmp").mkdir()  # looks like one, has no record
    >>> read_record(root / ".out.0123456789abcdef.tmp", root / "out") is None
    True
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

__all__ = ["OLD", "RECORD", "WORK", "clean_stale", "new_holder", "read_record", "short_name"]

log = logging.getLogger("assd")

RECORD, WORK, OLD = ".assd-temporary", "work", "old"
_NAME_BYTES = 120  # of the output's name kept in a temporary's name (a file name holds 255)
_TOKEN = re.compile(r"[0-9a-f]{16}")


def short_name(name: str, limit: int = _NAME_BYTES) -> str:
    """``name`` cut to at most ``limit`` bytes of UTF-8 (never inside a character)."""
    return os.fsencode(name)[:limit].decode("utf-8", errors="ignore")


def holder_name(final: Path, token: str) -> str:
    return f".{short_name(final.name)}.{token}.tmp"


def new_holder(final: str | os.PathLike) -> Path:
    """A new recorded temporary folder beside ``final`` (see the module docstring)."""
    final = Path(final)
    token = secrets.token_hex(8)
    holder = final.parent / holder_name(final, token)
    holder.mkdir()
    record = {"assd_temporary": token, "output": final.name, "pid": os.getpid(),
              "host": socket.gethostname(), "time": time.time()}  # fmt: skip
    try:
        (holder / RECORD).write_text(json.dumps(record), encoding="utf-8")
    except BaseException:
        shutil.rmtree(holder, ignore_errors=True)
        raise
    return holder


def read_record(holder: str | os.PathLike, final: str | os.PathLike) -> dict | None:
    """The record of ``holder`` if it is a temporary assd made for ``final``, else None."""
    holder, final = Path(holder), Path(final)
    record_path = holder / RECORD
    try:
        if holder.is_symlink() or record_path.is_symlink() or record_path.stat().st_size > 4096:
            return None
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    token, pid = record.get("assd_temporary"), record.get("pid")
    if not (isinstance(token, str) and _TOKEN.fullmatch(token) and isinstance(pid, int)):
        return None
    if record.get("output") != final.name or holder.name != holder_name(final, token):
        return None
    return record


def clean_stale(final: str | os.PathLike) -> list[str]:
    """Remove the recorded temporaries beside ``final`` whose process no longer runs.

    A backup (``old``) left by a crash between the two renames of a swap is
    first restored to ``final`` when ``final`` is missing. Returns the names
    of the temporaries removed.
    """
    final = Path(final)
    prefix = f".{short_name(final.name)}."
    try:
        names = [n for n in os.listdir(final.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return []
    done = []
    for name in sorted(names):
        holder = final.parent / name
        record = read_record(holder, final)
        if record is None or record.get("host") != socket.gethostname() or alive(record["pid"]):
            continue
        old = holder / OLD
        if old.is_dir() and not old.is_symlink() and not (final.exists() or final.is_symlink()):
            try:
                os.rename(old, final)  # a crash between the two renames of a swap
                log.warning("restored %s from the backup a crashed run left in %s", final, name)
            except OSError:  # another run restored it first
                pass
        shutil.rmtree(holder, ignore_errors=True)
        done.append(name)
    return done


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this host); this process counts as running."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True
