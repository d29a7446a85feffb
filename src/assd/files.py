"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "check_output", "check_writable", "not_writable", "write_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file is flushed to disk before the rename; on error it is
    removed and ``path`` is left as it was.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    final = Path(path)
    folder = final.parent if str(final.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {final}: folder {folder} does not exist.")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise not_writable(final, error) from None
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def not_writable(
    path: str | os.PathLike, error: OSError, folder: str | os.PathLike | None = None
) -> PermissionError:
    """A one-paragraph error for an output location that cannot be written."""
    where = folder if folder is not None else (Path(path).parent or ".")
    return PermissionError(
        f"cannot write {path}: {error.strerror or error} ({where} is not writable). "
        "Choose an output location you can write to; nothing was changed."
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes | str | Callable[[Path], None]) -> None:
    """Write bytes, text, or whatever ``data(tmp_path)`` writes, atomically to ``path``."""
    with atomic_path(path) as tmp:
        if callable(data):
            data(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def check_output(
    out: str | os.PathLike, *, inputs: list, overwrite: bool = False, flag: str = "--out"
) -> None:
    """Refuse an output that would replace or delete an input, or an existing output.

    Args:
        out: the file or folder about to be written.
        inputs: paths the command reads (None entries are skipped).
        overwrite: allow replacing an existing ``out`` that is not an input.
        flag: how the option is called, for the message.

    Raises:
        ValueError: if ``out`` is an input or a folder holding one.
        FileExistsError: if ``out`` exists and ``overwrite`` is False.
    """
    target = Path(out).resolve()
    for item in inputs:
        if item is None:
            continue
        source = Path(item).resolve()
        if target == source or target in source.parents:
            raise ValueError(
                f"{flag} {out} is the input {item} (or a folder holding it); writing there "
                "would destroy the input. Choose a new output path: inputs are never overwritten."
            )
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{out} already exists; choose a new {flag} or pass --overwrite to replace it."
        )
    check_writable(target)


def check_writable(target: str | os.PathLike) -> None:
    """Fail before any work if the nearest existing folder above ``target`` is read-only."""
    folder = Path(target).resolve().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".assd-probe.", dir=folder)
    except OSError as error:
        raise not_writable(target, error, folder) from None
    os.close(fd)
    os.unlink(name)
