"""Publishing an output folder in one atomic step that never destroys what assd did not write.

A folder is built in a hidden temporary sibling (``.NAME.PID.XXXX.tmp``) and
published by :func:`publish_folder`, which, holding a lock on the parent
folder, re-checks the rules and then renames:

- a new path is created exclusively (``renameat2(RENAME_NOREPLACE)`` on
  Linux; elsewhere the lock plus a re-check), so of two runs writing the same
  path without ``overwrite`` exactly one wins; the other's result is kept
  beside it under a visible name that its error message gives;
- an existing path is replaced only with ``overwrite`` and only when it is a
  folder assd wrote (it holds the :data:`MARKER` file, or a ``model.json``
  with an ``assd_version`` from before markers existed). On Linux the swap is
  one ``renameat2(RENAME_EXCHANGE)``: at every instant the path holds the old
  folder or the new one. Where that call is missing (other systems, some file
  systems) the old folder is renamed to a hidden backup first and restored if
  the second rename fails; a crash between the two renames leaves the path
  empty for that moment, and the next run restores the backup.

Temporaries of processes that no longer run are removed by the next write
beside them (:func:`clean_stale`).

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> tmp = new_temporary(root / "out")
    >>> _ = (tmp / "a.txt").write_text("new")
    >>> publish_folder(tmp, root / "out")
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
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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

MARKER = ".assd-output"
_NOREPLACE, _EXCHANGE, _AT_FDCWD = 1, 2, -100


def _step(name: str) -> None:
    """A named point of the publish; the fault-injection tests crash here."""


def new_temporary(final: str | os.PathLike) -> Path:
    """A fresh hidden folder beside ``final`` named ``.NAME.PID.XXXX.tmp``."""
    final = Path(final)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp",
                                 dir=final.parent))  # fmt: skip


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
                   overwrite: bool = False, flag: str = "--out") -> None:  # fmt: skip
    """Make the finished temporary folder ``tmp`` the folder ``final``, in one atomic step.

    Writes the :data:`MARKER` into ``tmp``, then under :func:`output_lock` of the
    parent re-checks the rules (no ``final`` unless ``overwrite``; never a
    ``final`` that assd did not write) and renames or swaps.

    Raises:
        FileExistsError: ``final`` appeared meanwhile (another run), or is not
            replaceable; this run's result is then kept under a visible name
            that the message gives.
    """
    tmp, final = Path(tmp), Path(final)
    marker = {"written_by": "assd", "pid": os.getpid(), "time": time.time()}
    (tmp / MARKER).write_text(json.dumps(marker), encoding="utf-8")
    _fsync_tree(tmp)
    _step("written")
    with output_lock(final.parent):
        _step("locked")
        exists = final.exists() or final.is_symlink()
        try:
            if exists and overwrite:
                refuse_foreign(final, flag=flag)
                _swap(tmp, final)
                return
            if exists:
                raise FileExistsError(errno.EEXIST, "exists", str(final))
            rename_exclusive(tmp, final)
            _step("renamed")
        except FileExistsError as error:
            raise _lost_race(tmp, final, error) from None
        _fsync_dir(final.parent)


def _swap(tmp: Path, final: Path) -> None:
    """Replace the assd folder ``final`` by ``tmp``: an atomic exchange, or a restorable
    backup where the exchange is missing."""
    if _renameat2(tmp, final, _EXCHANGE):
        _step("exchanged")
        _fsync_dir(final.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
        return
    backup = final.with_name(f".{final.name}.{os.getpid()}.backup")
    os.rename(final, backup)
    try:
        _step("backed-up")
        os.rename(tmp, final)
    except BaseException:
        os.rename(backup, final)
        raise
    try:
        _step("renamed")
        _fsync_dir(final.parent)
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def _lost_race(tmp: Path, final: Path, error: OSError) -> FileExistsError:
    """Keep this run's result beside ``final`` under a visible name and say where."""
    kept = final.with_name(f"{final.name}.unpublished-{time.strftime('%Y%m%d-%H%M%S')}-"
                           f"{os.getpid()}")  # fmt: skip
    try:
        os.rename(tmp, kept)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        where = "This run wrote nothing"
    else:
        where = f"This run's result was kept at {kept}"
    if error.errno != errno.EEXIST:  # refused by refuse_foreign: its message says why
        return FileExistsError(f"{error} {where}.")
    return FileExistsError(
        f"{final} already exists: another run wrote it while this one worked. {where}; "
        "choose a new output path, or pass --overwrite to replace a folder assd wrote."
    )


def clean_stale(final: str | os.PathLike) -> list[str]:
    """Remove temporaries beside ``final`` left by processes that no longer run.

    A backup left by a crash between the two renames of the fallback swap is
    restored when ``final`` is missing. Returns the names removed or restored.
    """
    final = Path(final)
    folder, prefix = final.parent, f".{final.name}."
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return []
    done = []
    for name in sorted(names):
        kind = _stale_kind(name[len(prefix):])
        if kind is None:
            continue
        path = folder / name
        if kind != "tmp" and not (final.exists() or final.is_symlink()) and path.is_dir():
            os.rename(path, final)  # a crash between the two renames of a swap
            log.warning("restored %s from the backup %s left by a crashed run", final, name)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        done.append(name)
    return done


def _stale_kind(rest: str) -> str | None:
    """``"tmp"``/``"backup"``/``"old"`` for a temporary of a dead process, else None.

    Names: ``PID.XXXX.tmp`` (mkdtemp/mkstemp), ``PID.backup`` and the ``old`` of
    earlier versions; anything else (e.g. the temporaries of ``NAME.v2``) is left alone.
    """
    parts = rest.split(".")
    if parts == ["old"]:
        return "old"
    shapes = {3: "tmp", 2: "backup"}
    if shapes.get(len(parts)) != parts[-1] or not parts[0].isdigit():
        return None
    return None if _alive(int(parts[0])) else parts[-1]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
