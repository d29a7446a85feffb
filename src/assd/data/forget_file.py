r"""Forget files: the ids of rows to forget, one per line, each exactly as written.

A line is an id, a comment (``#`` in the first column) or blank. Nothing is
split or trimmed and no number is parsed leniently, so an id holding a comma,
a ``#`` or spaces names exactly that row; a line that is not an id of the
table is refused with its line number.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "forget.txt"
    >>> _ = path.write_text("# rows to forget\nr1\na,b\n")
    >>> read_forget_ids(path, known=["r1", "a,b", "a"])
    ['r1', 'a,b']
    >>> _ = path.write_text("r1  # stale\n")
    >>> read_forget_ids(path, known=["r1"])
    Traceback (most recent call last):
    ...
    ValueError: ...line 1: 'r1  # stale' holds more than an id...
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_forget_ids", "read_forget_positions"]


def read_forget_ids(path: str | os.PathLike, *, known=None) -> list[str]:
    """Ids in a text file, one per line, each exactly as written.

    A line is an id, a comment (``#`` in the first column) or blank; nothing is
    split (a line ``a,b`` is the id ``a,b``) and no spaces are trimmed. A UTF-8
    byte-order mark and Windows line ends are fine.

    Args:
        path: the text file.
        known: the table's row ids, if at hand: every line must then be one of
            them, exactly; a line that is not is refused with its number (and,
            where it looks like one, why: spaces around an id, several ids on a
            line, a comment after an id).

    Raises:
        ValueError: no ids, an id twice, or (with ``known``) a line that is not an id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no forget file at {path}; write the row ids, one per line.")
    lines = _forget_lines(path)
    known = None if known is None else set(known)
    ids, unknown = [], []
    for number, line in lines:
        if known is not None and line not in known:
            unknown.append((number, line))
        else:
            ids.append(line)
    if unknown:
        raise ValueError(_unknown_message(path, unknown, known))
    if not ids:
        raise ValueError(f"{path} names no rows; write the ids of rows to forget, one per line.")
    _refuse_repeats(path, ids)
    return ids


def read_forget_positions(path: str | os.PathLike) -> list[int]:
    """Row positions (``0``, ``1``, ...) in a forget file: each line exactly digits 0-9.

    ``int()`` would also take ``1_0``, `` 7`` or other scripts' digits; here each
    is refused with its line number.
    """
    positions = []
    for number, line in _forget_lines(Path(path)):
        if not (line.isascii() and line.isdigit()):
            raise ValueError(
                f"{path} line {number}: {line!r} is not a row position; with --data-factory, "
                "forget ids are row positions (0, 1, 2, ...) in the training data set, "
                "written as plain digits, one per line."
            )
        positions.append(int(line))
    read_forget_ids(path)  # the same checks: some ids, none twice
    return positions


def _forget_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, line)`` of the id lines: no comments, no blank lines."""
    if not path.is_file():
        raise FileNotFoundError(f"no forget file at {path}; write the row ids, one per line.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not a UTF-8 text file ({error.reason} at byte {error.start}); write "
            "the row ids as plain text, one per line."
        ) from None
    except OSError as error:
        raise OSError(error.errno, f"cannot read {path}: {error.strerror}") from None
    out = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line[:-1] if line.endswith("\r") else line
        if line.startswith("#") or not line.strip():
            continue
        out.append((number, line))
    return out


def _unknown_message(path: Path, unknown: list, known: set) -> str:
    number, line = unknown[0]
    why = "is not a row id of the data"
    if line.strip() in known:
        why = f"has spaces around the id {line.strip()!r} (ids are matched exactly)"
    elif any(part.strip() in known for sep in ",;#\t" for part in line.split(sep)):
        why = ("holds more than an id (several ids, or a comment after one); write one id "
               "per line and comments on lines of their own (# in the first column)")
    examples = ", ".join(f"line {n}: {v!r}" for n, v in unknown[:5])
    return (
        f"{path} line {number}: {line!r} {why}. {len(unknown)} line(s) are not rows of the "
        f"data ({examples}); use the id column the model was trained with (or row numbers "
        "if it had none), one id per line, exactly as in the table."
    )


def _refuse_repeats(path: Path, ids: list[str]) -> None:
    if len(set(ids)) == len(ids):
        return
    seen, repeated = set(), []
    for i in ids:
        if i in seen and i not in repeated:
            repeated.append(i)
        seen.add(i)
    raise ValueError(
        f"{path} names {len(repeated)} row id(s) more than once, e.g. {repeated[:5]}; "
        "a duplicate usually means the list was pasted together wrongly. Remove the "
        "repeats and run again."
    )
