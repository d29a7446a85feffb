"""Reading tables (CSV, Parquet), stable row ids, train/test splits (forget-id files:
:mod:`assd.data.forget_file`).

Row ids are strings: the values of an id column when one is named, else the
0-based row number in the file, so that users can name rows to forget in a
plain text file, one id per line.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"when": ["2024-01-03", "2024-01-01", "2024-01-02"]})
    >>> split_rows(frame, "time:when", test_share=1 / 3).tolist()
    [True, False, False]
    >>> row_ids(frame).tolist()
    ['0', '1', '2']
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np

from .dates import read_dates
from .forget_file import read_forget_ids, read_forget_positions

__all__ = ["read_forget_ids", "read_forget_positions", "read_table", "row_ids", "split_rows"]


log = logging.getLogger("assd")

PARQUET = (".parquet", ".pq")
TEXT = (".csv", ".tsv", ".txt", ".gz", ".bz2", ".zip", ".xz")
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # latin-1 decodes any byte: last resort


def read_table(path: str | os.PathLike, *, text_columns=()):
    """Read a CSV (delimiter and encoding sniffed; compressed is fine) or Parquet file.

    Args:
        path: the file.
        text_columns: columns read exactly as written, as strings (row ids:
            ``007`` stays ``007``, ``NA`` stays ``NA``, an empty cell is ``""``).

    Returns:
        A pandas DataFrame, rows in file order. Columns that look numeric but
        were read as text (decimal commas, a few stray words) are warned about.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}; pass the path of a CSV or Parquet file.")
    suffix = path.suffix.lower()
    if suffix in PARQUET:
        try:
            return pd.read_parquet(path)
        except Exception as error:  # pyarrow raises its own types
            raise ValueError(f"cannot read {path} as Parquet ({error}).") from error
    if suffix not in TEXT:
        raise ValueError(
            f"{path.name}: unknown file type {suffix!r}; pass a .csv/.tsv (optionally "
            ".gz/.zip) or .parquet file."
        )
    encoding, delimiter = _sniff(path)
    try:
        frame = pd.read_csv(path, sep=delimiter, encoding=encoding, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())  # pandas' messages span lines
        raise ValueError(
            f"cannot read {path} as a table ({reason}); check that it is a delimited text "
            "file with one header row (open it in a text editor), or save it as CSV again."
        ) from error
    if frame.shape[1] < 2:
        raise ValueError(
            f"{path} has {frame.shape[1]} column(s) after sniffing the delimiter "
            f"{delimiter!r}; a table needs a target and at least one feature."
        )
    exact = [c for c in text_columns or () if c is not None and c in frame.columns]
    if exact:  # ids exactly as written: no number parsing, no missing-value guessing
        text = pd.read_csv(path, sep=delimiter, encoding=encoding, usecols=exact, dtype=str,
                           keep_default_na=False)  # fmt: skip
        for col in exact:
            frame[col] = text[col].to_numpy(dtype=object)
    _warn_text_numbers(frame, path.name, skip=exact)
    return frame


def _warn_text_numbers(frame, name: str, *, skip=()) -> None:
    """Warn about text columns whose values are mostly numbers (a dialect read wrongly)."""
    import pandas as pd

    for col in frame.columns:
        dtype = frame[col].dtype
        if col in skip or not pd.api.types.is_string_dtype(dtype):
            continue
        counts = frame[col].dropna().astype(str).str.strip().value_counts(sort=False)
        counts = counts[counts.index != ""]  # each distinct value parsed once, weighted by rows
        values = counts.index.to_series()
        if counts.sum() < 2:
            continue
        plain = pd.to_numeric(values, errors="coerce").notna().to_numpy()
        comma = pd.to_numeric(values.str.replace(",", ".", regex=False),
                              errors="coerce").notna().to_numpy()  # fmt: skip
        weights = counts.to_numpy() / counts.sum()
        plain_share, comma_share = weights[plain].sum(), weights[comma].sum()
        if comma_share >= 0.9 and plain_share < 0.9:
            log.warning(
                "%s: column %r looks numeric with decimal commas (e.g. %r) but is read as text "
                "(categorical); save the file with decimal points to use it as a number",
                name, col, values[~plain].iloc[0],
            )  # fmt: skip
        elif plain_share >= 0.9:
            log.warning(
                "%s: column %r is mostly numbers but is read as text because of %d value(s) "
                "like %r; clean them (or leave the cells empty) to use it as a number",
                name, col, int(counts.to_numpy()[~plain].sum()), values[~plain].iloc[0],
            )  # fmt: skip


def _sniff(path: Path) -> tuple[str, str]:
    """Guess the encoding and the delimiter from the first 64 KiB."""
    import pandas as pd

    compression = pd.io.common.infer_compression(str(path), "infer")
    with pd.io.common.get_handle(str(path), "rb", compression=compression, is_text=False) as handle:
        head = handle.handle.read(65536)
    if not head.strip():
        raise ValueError(f"{path} is empty; pass a table with a header row and data.")
    wide = _utf16(head)
    if wide:  # Excel's "Unicode text" and PowerShell write UTF-16
        log.warning("%s is UTF-16; reading it as %s", path.name, wide)
        return wide, _delimiter(head.decode(wide, errors="ignore").lstrip("\ufeff"))
    for encoding in ENCODINGS:
        try:
            text = head.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if encoding != "utf-8-sig":
        log.warning("%s is not UTF-8; reading it as %s", path.name, encoding)
    return encoding, _delimiter(text)


def _delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _utf16(head: bytes) -> str | None:
    """``"utf-16"`` (with a byte-order mark), ``"utf-16-le"``/``"-be"`` (without), or None."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    pairs = head[: len(head) - len(head) % 2]
    if len(pairs) < 4:
        return None
    even, odd = pairs[0::2], pairs[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def row_ids(frame, id_column: str | None = None) -> np.ndarray:
    """Stable string ids: ``frame[id_column]`` (unique, no blanks) or the row number."""
    if id_column is None:
        return np.arange(len(frame)).astype(str)
    if id_column not in frame.columns:
        raise ValueError(f"no id column {id_column!r}; columns are {list(frame.columns)[:20]}.")
    column = frame[id_column]
    ids = column.astype(str).to_numpy(dtype=object)
    blank = column.isna().to_numpy() | (ids == "")
    if blank.any():
        raise ValueError(
            f"id column {id_column!r} has {int(blank.sum())} blank value(s) (first at row "
            f"{int(np.flatnonzero(blank)[0])}); every row needs an id."
        )
    if len(set(ids)) != len(ids):
        import pandas as pd

        repeated = pd.Index(ids)[pd.Index(ids).duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"id column {id_column!r} has duplicate values, e.g. {repeated}; ids must be unique."
        )
    return ids


def split_rows(
    frame, spec: str, *, test_share: float = 0.2, seed: int = 0, date_format: str | None = None
) -> np.ndarray:
    """Boolean mask of the held-out (test) rows.

    Args:
        frame: the table.
        spec: ``"time:COLUMN"`` (the latest ``test_share`` of rows by that
            column's time are the test set), ``"random"`` (a seeded random
            share) or ``"none"`` (no test set).
        test_share: share of rows held out.
        seed: seed of the random split.
        date_format: how the time column's dates are written (``strptime`` codes);
            default: detected, ambiguous day/month refused (:mod:`assd.data.dates`).
    """

    n = len(frame)
    if spec == "none":
        return np.zeros(n, dtype=bool)
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must lie strictly between 0 and 1, got {test_share}.")
    n_test = round(test_share * n)
    test = np.zeros(n, dtype=bool)
    if spec == "random":
        test[np.random.default_rng(seed).permutation(n)[:n_test]] = True
        return test
    if not spec.startswith("time:"):
        raise ValueError(f"unknown split {spec!r}; use 'time:COLUMN', 'random' or 'none'.")
    col = spec[5:]
    if col not in frame.columns:
        raise ValueError(f"split column {col!r} is not in the data.")
    times = read_dates(frame[col], col, date_format)
    order = np.argsort(times.astype("int64").to_numpy(), kind="stable")  # vectorised, UTC
    test[order[n - n_test :]] = True
    return test
