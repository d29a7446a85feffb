"""Publishing an output folder in one atomic step that never destroys what assd did not write.

A folder is built in a recorded temporary beside it
(:mod:`assd.store.temporaries`) and published by :func:`publish_folder`,
which writes the marker with the manifest of the files written
(:mod:`assd.store.manifest`) and, holding a lock on the parent folder,
re-checks the rules and then renames:

- a new path is created exclusively (``renameat2(RENAME_NOREPLACE)`` on
  Linux; elsewhere the lock plus a re-check), so of two runs writing the same
  path without ``overwrite`` exactly one wins; the other's result is kept
  beside it under a visible name that its error message gives;
- an existing path is replaced only with ``overwrite`` and only when it is a
  folder assd wrote (it holds the :data:`MARKER` file, or a ``model.json``
  with an ``assd_version`` from before markers existed). When it holds only
  files assd wrote, on Linux the swap is one ``renameat2(RENAME_EXCHANGE)``:
  at every instant the path holds the old folder or the new one. Where that
  call is missing the old folder is moved into the temporary first and
  restored if the second rename fails; a crash between the two renames leaves
  the path empty for that moment, and the next run restores it.
- when the folder also holds files assd did not write (added by the user
  afterwards), those stay where they are: the files assd wrote are replaced
  one by one (each rename atomic), the marker last, and a warning lists the
  files kept. A new file that would land on one of the user's is refused
  before anything changes.

Recorded temporaries of processes that no longer run are removed by the next
write beside them (:func:`clean_stale`).

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> tmp = new_temporary(root / "out")
    >>> _ = (tmp / "a.txt").write_text("new")
    >>> publish_folder(tmp, root / "out")
    []
    >>> sorted(p.name for p in root.iterdir())
    ['out']
    >>> sorted(p.name for p in (root / "out").iterdir())
    ['.assd-output', 'a.txt']
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from .fsync import fsync_dir
from .in_place import replace_in_place
from .manifest import MARKER, describe, foreign_files
from .temporaries import OLD, WORK, clean_stale, new_holder, read_record, short_name

__all__ = [
    "MARKER",
    "clean_stale",
    "is_assd_output",
    "new_temporary",
    "output_lock",
    "publish_folder",
    "rename_exclusive",
]

log = logging.getLogger("assd")

_NOREPLACE, _EXCHANGE, _AT_FDCWD = 1, 2, -100


def _step(name: str) -> None:
    """A named point of the publish; the fault-injection tests crash here."""


def new_temporary(final: str | os.PathLike) -> Path:
    """A fresh folder to build ``final`` in: ``work`` inside a recorded temporary beside it."""
    work = new_holder(final) / WORK
    work.mkdir()
    return work


def is_assd_output(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder that assd wrote (marker, or an older assd model folder)."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    if (path / MARKER).is_file():
        return True
    try:
        spec = json.loads((path / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(spec, dict) and "assd_version" in spec


def refuse_foreign(path: str | os.PathLike, *, flag: str = "--out") -> None:
    """Raise if an existing ``path`` is not a folder assd wrote (--overwrite may not replace it)."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()) or is_assd_output(path):
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return  # an empty folder (made by mkdir) holds nothing to lose
    what = "a link" if path.is_symlink() else "a file" if not path.is_dir() else (
        f"a folder assd did not write (no {MARKER} marker)")  # fmt: skip
    raise FileExistsError(
        f"{flag} {path} is {what}; --overwrite only replaces output folders that assd wrote, "
        "never other files. Choose a new path, or move that one away yourself; nothing "
        "was changed."
    )


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (``flock``; released even if the process dies)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the exclusive rename still guards new paths
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a folder we may write but not list: go on with the exclusive rename
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:  # some network file systems have no locks
            log.debug("cannot lock %s (%s); publishing without the lock", folder, error)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False where the system or file system lacks it."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


def rename_exclusive(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` to ``dst``, failing with FileExistsError if ``dst`` exists (even as
    an empty folder). Atomic on Linux; elsewhere call it under :func:`output_lock`."""
    src, dst = Path(src), Path(dst)
    if _renameat2(src, dst, _NOREPLACE):
        return
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def publish_folder(tmp: str | os.PathLike, final: str | os.PathLike, *,
                   overwrite: bool = False, flag: str = "--out") -> list[str]:  # fmt: skip
    """Make the finished folder ``tmp`` (from :func:`new_temporary`) the folder ``final``.

    Writes the :data:`MARKER` with the manifest into ``tmp``, then under
    :func:`output_lock` of the parent re-checks the rules (no ``final`` unless
    ``overwrite``; never a ``final`` that assd did not write) and renames, swaps
    or, where ``final`` holds files assd did not write, replaces assd's files
    in place (see the module docstring). The temporary is removed.

    Returns:
        The files of the user's that an ``overwrite`` left in place (relative paths).

    Raises:
        FileExistsError: ``final`` appeared meanwhile (another run), or is not
            replaceable; this run's result is then kept under a visible name
            that the message gives.
    """
    tmp, final = Path(tmp), Path(final)
    holder = tmp.parent if read_record(tmp.parent, final) else None
    try:
        return _publish(tmp, final, holder, overwrite=overwrite, flag=flag)
    finally:
        if holder is not None:
            shutil.rmtree(holder, ignore_errors=True)


def _publish(tmp: Path, final: Path, holder, *, overwrite: bool, flag: str) -> list[str]:
    marker = {"written_by": "assd", "pid": os.getpid(), "time": time.time(),
              "files": describe(tmp)}  # fmt: skip
    (tmp / MARKER).write_text(json.dumps(marker, sort_keys=True), encoding="utf-8")
    _fsync_tree(tmp)
    _step("written")
    with output_lock(final.parent):
        _step("locked")
        exists = final.exists() or final.is_symlink()
        try:
            if exists and overwrite:
                refuse_foreign(final, flag=flag)
                kept = foreign_files(final) if final.is_dir() else []
                if kept:
                    replace_in_place(tmp, final, kept, flag=flag)
                    return kept
                _swap(tmp, final, holder)
                return []
            if exists:
                raise FileExistsError(errno.EEXIST, "exists", str(final))
            rename_exclusive(tmp, final)
            _step("renamed")
        except FileExistsError as error:
            raise _lost_race(tmp, final, error) from None
        fsync_dir(final.parent)
    return []


def _swap(tmp: Path, final: Path, holder: Path | None) -> None:
    """Replace the assd folder ``final`` (only assd's files) by ``tmp``: an atomic
    exchange, or a restorable backup inside the recorded temporary where it is missing."""
    if _renameat2(tmp, final, _EXCHANGE):
        _step("exchanged")
        fsync_dir(final.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
        return
    backup = (holder if holder is not None else new_holder(final)) / OLD
    os.rename(final, backup)
    try:
        _step("backed-up")
        os.rename(tmp, final)
    except BaseException:
        os.rename(backup, final)
        raise
    try:
        _step("renamed")
        fsync_dir(final.parent)
    finally:
        shutil.rmtree(backup.parent if holder is None else backup, ignore_errors=True)


def _lost_race(tmp: Path, final: Path, error: OSError) -> FileExistsError:
    """Keep this run's result beside ``final`` under a visible name and say where."""
    kept = final.with_name(f"{short_name(final.name)}.unpublished-"
                           f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")  # fmt: skip
    try:
        os.rename(tmp, kept)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        where = "This run wrote nothing"
    else:
        where = f"This run's result was kept at {kept}"
    if error.errno != errno.EEXIST:  # refused by refuse_foreign or a clash: it says why
        return FileExistsError(f"{error} {where}.")
    return FileExistsError(
        f"{final} already exists: another run wrote it while this one worked. {where}; "
        "choose a new output path, or pass --overwrite to replace a folder assd wrote."
    )


def _fsync_tree(folder: Path) -> None:
    mode_file, mode_dir = 0o666 & ~_umask(), 0o777 & ~_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(path, mode_file)  # some writers (safetensors) create files 0600
        elif path.is_dir():
            os.chmod(path, mode_dir)
    os.chmod(folder, mode_dir)  # mkdtemp makes 0700


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
