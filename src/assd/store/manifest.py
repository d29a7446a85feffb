"""What assd wrote into an output folder: the manifest in its marker, and checksums.

The marker :data:`MARKER` of every output folder lists the files assd wrote
there. ``--overwrite`` removes only those; any other file (a notebook the user
added afterwards) stays where it is. For every JSON file the manifest also
keeps a SHA-256 of the file and of each of its top-level fields, so an edited
``model.json`` or ``task.json`` is refused naming the file and the field
(:func:`check_json`).

Folders of earlier versions have a marker without a list, or only a
``model.json`` carrying ``assd_version``: there, only the file names assd
writes into model folders (:data:`LEGACY_NAMES`) and its importance-cache
entries count as assd's.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "model.json").write_text('{"kwargs": {"n_features": 4}}')
    >>> entry = describe(folder)
    >>> sorted(entry), sorted(entry["model.json"]["fields"])
    (['model.json'], ['kwargs'])
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

__all__ = ["LEGACY_NAMES", "MARKER", "check_json", "describe", "foreign_files", "owned_files"]

MARKER = ".assd-output"
LEGACY_NAMES = frozenset(
    {"model.json", "model.safetensors", "task.json", "report.json", "report.md", MARKER}
)
_CACHE_FORMATS = (b"assd-importance-cache", b"assd-reference-cache")  # cache entries by format


def describe(folder: str | os.PathLike) -> dict[str, dict]:
    """The manifest of ``folder``: ``{relative path: {...}}`` for every file in it, with
    ``sha256`` and per-field ``fields`` digests for JSON objects."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if name == MARKER or (path.is_dir() and not path.is_symlink()):
            continue
        entry: dict = {}
        if path.suffix == ".json" and path.is_file() and not path.is_symlink():
            entry = _json_entry(path.read_bytes())
        out[name] = entry
    return out


def _json_entry(data: bytes) -> dict:
    entry: dict = {"sha256": hashlib.sha256(data).hexdigest()}
    try:
        value = json.loads(data)
    except ValueError:
        return entry
    if isinstance(value, dict):
        entry["fields"] = {k: _digest(v) for k, v in value.items()}
    return entry


def _digest(value) -> str:
    text = json.dumps(value, sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of ``folder`` as a dict; None without one (or if it is not JSON)."""
    path = Path(folder) / MARKER
    try:
        if path.is_symlink() or path.stat().st_size > 64 << 20:
            return None
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def owned_files(folder: str | os.PathLike) -> set[str]:
    """Relative paths of the files in ``folder`` that assd wrote (see the module docstring)."""
    folder = Path(folder)
    marker = read_marker(folder)
    files = marker.get("files") if marker else None
    if isinstance(files, dict):
        return {str(f) for f in files} | {MARKER}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*")}
    owned = {name for name in present if name in LEGACY_NAMES}
    return owned | {n for n in present if _is_cache_entry(folder / n)}


def foreign_files(folder: str | os.PathLike) -> list[str]:
    """Files, links and empty folders in ``folder`` that assd did not write (sorted)."""
    folder = Path(folder)
    owned = owned_files(folder)
    added = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                added.append(name + "/")
            continue
        if name not in owned:
            added.append(name)
    return added


def _is_cache_entry(path: Path) -> bool:
    """A cache entry (importance or reference models) by its own metadata (not its name)."""
    if path.suffix != ".safetensors" or path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = handle.read(min(size, 1 << 20))
    except (OSError, struct.error):
        return False
    try:
        metadata = json.loads(header).get("__metadata__") or {}
    except (ValueError, AttributeError):
        return False
    return str(metadata.get("format", "")).encode().startswith(_CACHE_FORMATS)


def check_json(folder: str | os.PathLike, name: str, data: bytes) -> None:
    """Refuse ``data`` (the bytes of ``folder/name``) if it differs from what assd wrote.

    Silent where the folder's marker has no checksum of ``name`` (older folders,
    folders not written by assd).

    Raises:
        ValueError: naming the file and the top-level field(s) that changed.
    """
    marker = read_marker(folder)
    files = marker.get("files") if marker else None
    entry = files.get(name) if isinstance(files, dict) else None
    if not isinstance(entry, dict) or "sha256" not in entry:
        return
    if hashlib.sha256(data).hexdigest() == entry["sha256"]:
        return
    now = _json_entry(data).get("fields")
    then = entry.get("fields") or {}
    if now is None:
        changed = "it is no longer a JSON object"
    else:
        fields = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
        if not fields:
            return  # the same values, laid out differently
        changed = f"field(s) {fields} differ"
    raise ValueError(
        f"{Path(folder) / name} was changed after assd wrote it ({changed} from what its "
        f"checksum in {MARKER} records); restore the file as assd wrote it, or re-create the "
        "model. assd refuses edited model files because they silently change predictions."
    )
