"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "atomic_path",
    "check_output",
    "check_readable",
    "check_writable",
    "not_writable",
    "read_safetensors",
    "refuse_existing",
    "write_atomic",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path (same name, inside a recorded temporary folder beside
    ``path``); on success it replaces ``path``.

    The temporary file is flushed to disk and given the usual permissions
    (``0666`` less the umask) before the rename; on error it is removed and
    ``path`` is left as it was. With ``overwrite=False`` the rename is
    exclusive: if ``path`` appeared meanwhile (another run), FileExistsError
    and nothing is written. Recorded temporaries of dead processes beside
    ``path`` are removed first (:func:`assd.store.temporaries.clean_stale`);
    nothing else is.

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
    from .publish import rename_exclusive
    from .temporaries import clean_stale, new_holder

    clean_stale(final)
    try:
        holder = new_holder(final)
    except OSError as error:
        raise not_writable(final, error) from None
    tmp = holder / final.name
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors makes 0600
        if overwrite:
            os.replace(tmp, final)
        else:
            try:
                rename_exclusive(tmp, final)
            except FileExistsError:
                raise FileExistsError(
                    f"{final} appeared while this run worked (another run?); nothing was "
                    "written. Choose a new path, or pass --overwrite to replace it."
                ) from None
    finally:
        shutil.rmtree(holder, ignore_errors=True)


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


def write_atomic(
    path: str | os.PathLike,
    data: bytes | str | Callable[[Path], None],
    *,
    overwrite: bool = True,
) -> None:
    """Write bytes, text, or whatever ``data(tmp_path)`` writes, atomically to ``path``.

    With ``overwrite=False`` an existing ``path`` (even one that appeared while
    the data was written) is never replaced: FileExistsError instead.
    """
    with atomic_path(path, overwrite=overwrite) as tmp:
        if callable(data):
            data(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def check_output(
    out: str | os.PathLike,
    *,
    inputs: list,
    overwrite: bool = False,
    flag: str = "--out",
    kind: str = "folder",
) -> None:
    """Refuse, before any work, an output that would replace or delete what it must not.

    Args:
        out: the file or folder about to be written.
        inputs: paths the command reads (None entries are skipped).
        overwrite: allow replacing an existing ``out``: for ``kind="folder"`` only a
            folder assd wrote (:func:`assd.store.publish.is_assd_output`); for
            ``kind="file"`` only a plain file, never one inside an assd folder.
        flag: how the option is called, for the message.
        kind: ``"folder"`` or ``"file"``: what ``out`` will be.

    Raises:
        ValueError: if ``out`` is an input, lies inside one, or is a folder holding one.
        FileExistsError: if ``out`` exists and may not (or was not asked to) be replaced.

    Example:
        >>> import tempfile, pathlib
        >>> model = pathlib.Path(tempfile.mkdtemp())
        >>> check_output(model / "model.json", inputs=[model], flag="--json", kind="file")
        Traceback (most recent call last):
        ...
        ValueError: --json ... lies inside the input ...
    """
    from .publish import is_assd_output, refuse_foreign

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
        if source in target.parents:
            raise ValueError(
                f"{flag} {out} lies inside the input {item}; writing there would change the "
                "input. Choose an output path outside it: inputs are never modified."
            )
    path = Path(out)
    if refuse_existing(path, overwrite=overwrite, flag=flag):
        if kind == "folder":
            refuse_foreign(path, flag=flag)
        elif path.is_dir() or path.is_symlink() or is_assd_output(target.parent):
            where = f"a file of the assd folder {target.parent}" if path.is_file() else (
                "a folder or a link")  # fmt: skip
            raise FileExistsError(
                f"{flag} {out} is {where}; --overwrite replaces only a plain file of its own. "
                "Choose another path; nothing was changed."
            )
    check_writable(target)


def refuse_existing(path: str | os.PathLike, *, overwrite: bool, flag: str = "--out") -> bool:
    """Whether ``path`` exists (a dangling link counts); if it does, refuse it unless
    ``overwrite`` (the caller then checks that it may replace what is there).

    Example:
        >>> import tempfile
        >>> refuse_existing(tempfile.mkdtemp(), overwrite=True)
        True
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return False
    if not overwrite:
        raise FileExistsError(
            f"{path} already exists; choose a new {flag} or pass --overwrite to replace it."
        )
    return True


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


def check_readable(path: str | os.PathLike) -> None:
    """Raise PermissionError (not "corrupt") if ``path`` exists but may not be read."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError as error:
        raise PermissionError(
            f"cannot read {path}: {error.strerror}. The file is not necessarily damaged: make "
            "it readable (e.g. chmod u+r) or run as a user who may read it."
        ) from None
    except (FileNotFoundError, IsADirectoryError):
        pass


def read_safetensors(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(metadata, tensors)`` of a safetensors file, on the CPU; ValueError ``"unreadable:
    ..."`` if it cannot be read (a cache entry's reader then warns and recomputes)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"unreadable: {' '.join(str(error).split())}") from None
    return metadata, tensors
