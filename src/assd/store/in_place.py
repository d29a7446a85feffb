"""Replacing assd's files in a folder that also holds the user's, leaving the user's alone.

Used by :func:`assd.store.publish.publish_folder` when an ``--overwrite``
target holds files its manifest does not list: each file assd wrote is
replaced (or removed) by one atomic rename, the marker last; a new file that
would land on one of the user's is refused before anything changes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .fsync import fsync_dir
from .manifest import MARKER, describe, owned_files

__all__ = ["replace_in_place"]

log = logging.getLogger("assd")


def replace_in_place(tmp: Path, final: Path, kept: list[str], *, flag: str) -> None:
    """Replace the files assd wrote in ``final`` by those of ``tmp``; keep the others."""
    new = list(describe(tmp))
    foreign = {k.rstrip("/") for k in kept}
    clash = [n for n in new if _lands_on(n, foreign) or (final / n).is_dir()]
    if clash:
        raise FileExistsError(
            f"{flag} {final} holds file(s) assd did not write where this run would write "
            f"{clash[:5]}; nothing there was changed. Move those files away, or choose a "
            "new path."
        )
    old = owned_files(final) - {MARKER}
    for name in sorted(old - set(new)):
        path = final / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    for name in new:
        (final / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / name, final / name)
    os.replace(tmp / MARKER, final / MARKER)  # last: the manifest of what is there now
    fsync_dir(final)
    log.warning(
        "%s: replaced the files assd wrote; kept %d file(s) assd did not write: %s",
        final, len(kept), ", ".join(kept[:10]) + (" ..." if len(kept) > 10 else ""),
    )  # fmt: skip


def _lands_on(name: str, foreign: set[str]) -> bool:
    """Whether writing ``name`` would replace a foreign file or need one as its folder."""
    parts = name.split("/")
    return any("/".join(parts[: i + 1]) in foreign for i in range(len(parts)))
