"""Fault injection on publishing: crashes at every step, concurrent writers, a full disk.

Every entry of :data:`FAULTS` is one injected fault; ``docs/reliability.md``
lists them (``tests/test_bad_inputs.py`` renders it). A crash is a real one: a
forked child ``os._exit``s at the named step of :func:`assd.store.publish.publish_folder`
without running any clean-up, and the parent inspects what is left.
"""

from __future__ import annotations

import errno
import json
import os
import threading

import pytest

from assd.models import build_model
from assd.store import publish
from assd.store.checkpoints import load_model, save_model, write_folder

FAULTS: list[tuple[str, str, str]] = []  # (id, fault, what must hold) for the docs


def fault(id_, what, holds):
    FAULTS.append((id_, what, holds))
    return id_


def write(folder, text: str, *, overwrite: bool = True) -> None:
    with write_folder(folder, overwrite=overwrite) as tmp:
        (tmp / "model.safetensors").write_text(text * 1000)
        (tmp / "model.json").write_text(json.dumps({"text": text}))


def content(folder) -> str | None:
    """'old'/'new' if ``folder`` holds one complete output, None if nothing is there."""
    if not folder.exists():
        return None
    texts = {json.loads((folder / "model.json").read_text())["text"]}
    texts.add((folder / "model.safetensors").read_text()[:3])
    assert len(texts) == 1 and (folder / publish.MARKER).is_file(), "a torn output"
    return texts.pop()


def hidden(root, name="out") -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(f".{name}."))


def no_exchange(monkeypatch):
    """Take away renameat2 (as on macOS or a file system without it)."""
    monkeypatch.setattr(publish, "_renameat2", lambda src, dst, flags: False)


CRASH_STEPS = [
    ("exchange", "written"), ("exchange", "locked"), ("exchange", "exchanged"),
    ("fallback", "written"), ("fallback", "locked"), ("fallback", "backed-up"),
    ("fallback", "renamed"),
]  # fmt: skip
for _mode, _step in CRASH_STEPS:
    fault(f"crash-{_mode}-{_step}", f"process killed at step '{_step}' of an --overwrite "
          f"publish ({'renameat2 exchange' if _mode == 'exchange' else 'no renameat2'})",
          "the path holds the complete old or new output; the next run removes the "
          "temporaries" + (" and restores the backup" if _step == "backed-up" else ""))  # fmt: skip


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize(("mode", "step"), CRASH_STEPS, ids=[f"{m}-{s}" for m, s in CRASH_STEPS])
def test_a_crash_at_any_step_leaves_the_old_or_the_new_output(tmp_path, monkeypatch, mode, step):
    out = tmp_path / "out"
    write(out, "old")
    if mode == "fallback":
        no_exchange(monkeypatch)
    monkeypatch.setattr(publish, "_step", lambda name: os._exit(9) if name == step else None)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child never returns
        try:
            write(out, "new")
        finally:
            os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 9  # it really crashed at that step
    monkeypatch.setattr(publish, "_step", lambda name: None)
    seen = content(out)
    if (mode, step) == ("fallback", "backed-up"):
        assert seen is None and len(hidden(tmp_path)) == 1  # the honest gap of the fallback
    else:
        assert seen in ("old", "new")
    publish.clean_stale(out)  # what the next run does first
    assert content(out) in ("old", "new") and hidden(tmp_path) == []
    expected = "new" if step in ("exchanged", "renamed") else "old"
    assert content(out) == expected


ERROR_STEPS = ["written", "locked", "exchanged", "backed-up", "renamed"]
for _step in ERROR_STEPS:
    fault(f"error-at-{_step}", f"an exception (e.g. Ctrl-C) at step '{_step}' of a publish",
          "the path holds the complete old or new output; no temporary is left")  # fmt: skip


@pytest.mark.parametrize("step", ERROR_STEPS)
def test_an_exception_at_any_step_leaves_no_temporaries(tmp_path, monkeypatch, step):
    out = tmp_path / "out"
    write(out, "old")

    def boom(name):
        if name == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(publish, "_step", boom)
    if step in ("backed-up", "renamed"):  # steps of the swap without renameat2
        no_exchange(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        write(out, "new")
    assert content(out) == ("new" if step in ("exchanged", "renamed") else "old")
    assert hidden(tmp_path) == []


fault("race-new-path", "two runs publish the same new --out at once (no --overwrite)",
      "exactly one wins; the other fails, naming where its complete result was kept")  # fmt: skip


def test_two_writers_of_one_new_path_cannot_both_win(tmp_path, monkeypatch):
    out, barrier = tmp_path / "out", threading.Barrier(2, timeout=30)
    monkeypatch.setattr(publish, "_step", lambda name: barrier.wait() if name == "written" else 0)
    outcome = {}

    def run(text):
        try:
            write(out, text, overwrite=False)
            outcome[text] = "won"
        except FileExistsError as error:
            outcome[text] = str(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in ("aaa", "bbb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(v == "won" for v in outcome.values()) == [False, True]
    winner = next(k for k, v in outcome.items() if v == "won")
    loser = next(k for k in outcome if k != winner)
    assert content(out) == winner
    kept = tmp_path / outcome[loser].split("kept at ")[1].split(";")[0].split("/")[-1]
    assert "another run wrote it" in outcome[loser]
    assert content(kept) == loser
    assert hidden(tmp_path) == []


fault("race-overwrite", "two runs replace the same assd folder at once (--overwrite)",
      "both succeed one after the other; the path holds one complete result")  # fmt: skip


def test_two_overwriting_writers_leave_one_complete_result(tmp_path, monkeypatch):
    out, barrier = tmp_path / "out", threading.Barrier(2, timeout=30)
    write(out, "old")
    monkeypatch.setattr(publish, "_step", lambda name: barrier.wait() if name == "written" else 0)
    threads = [threading.Thread(target=write, args=(out, t)) for t in ("aaa", "bbb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert content(out) in ("aaa", "bbb") and hidden(tmp_path) == []


fault("race-foreign-appears", "a folder of the user's files appears at --out while a run works",
      "the publish re-checks under the lock and refuses, even with --overwrite; the user's "
      "files are untouched and the run's result is kept beside them")  # fmt: skip


def test_a_foreign_folder_that_appears_meanwhile_is_never_replaced(tmp_path, monkeypatch):
    out = tmp_path / "out"

    def user_creates_files(name):
        if name == "written":
            out.mkdir()
            (out / "notes.txt").write_text("mine")

    monkeypatch.setattr(publish, "_step", user_creates_files)
    with pytest.raises(FileExistsError, match="assd did not write"):
        write(out, "new", overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


fault("full-disk-weights", "the disk fills while the weights are written (ENOSPC, and "
      "safetensors' own error type)", "one-paragraph error saying nothing was written; the "
      "old folder is intact; no temporary is left")  # fmt: skip


@pytest.mark.parametrize("kind", ["oserror", "safetensors"])
def test_a_full_disk_changes_nothing(tmp_path, monkeypatch, kind):
    import safetensors.torch

    spec = {"n_features": 3, "n_classes": 2}
    model = build_model("mlp-small", **spec)
    save_model(tmp_path / "out", model, architecture="mlp-small", kwargs=spec)
    before = (tmp_path / "out" / "model.safetensors").read_bytes()

    def full(*args, **kwargs):
        if kind == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise safetensors.SafetensorError("I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_model", full)
    with pytest.raises(OSError, match="nothing was written"):
        save_model(tmp_path / "out", model, architecture="mlp-small", kwargs=spec,
                   overwrite=True)  # fmt: skip
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == before
    assert hidden(tmp_path) == []
    load_model(tmp_path / "out")


fault("stale-temporaries", "recorded temporaries and a swap backup left by killed runs",
      "removed by the next write beside them, restoring a backup whose output is missing; "
      "temporaries of live runs are kept")  # fmt: skip


def _crashed_holder(out, *, backup: bool = False):
    """A recorded temporary as a killed run leaves it (its record names a dead process)."""
    from assd.store import temporaries

    holder = temporaries.new_holder(out)
    record = json.loads((holder / temporaries.RECORD).read_text())
    (holder / temporaries.RECORD).write_text(json.dumps({**record, "pid": _dead_pid()}))
    (holder / "work").mkdir()
    (holder / "work" / "model.json").write_text("half")
    if backup:
        os.rename(out, holder / "old")
    return holder


def test_stale_temporaries_of_dead_runs_are_cleaned_and_live_ones_kept(tmp_path):
    from assd.store import temporaries

    out = tmp_path / "out"
    write(out, "old")
    _crashed_holder(out)
    _crashed_holder(out, backup=True)  # killed between the two renames: no output now
    live = temporaries.new_holder(out)  # a run in progress: kept
    assert content(out) is None
    write(out, "new", overwrite=True)  # the old folder is restored, then replaced
    assert content(out) == "new"
    assert hidden(tmp_path) == [live.name]


fault("lookalike-temporaries", "files and folders of the user's named like assd temporaries "
      "(old and new naming, dead process ids, forged records naming another token)",
      "never touched: only temporaries whose record names their own random token are "
      "removed")  # fmt: skip


def _lookalikes(root, dead: int) -> dict:
    record = {"assd_temporary": "0" * 16, "output": "out", "pid": dead, "host": "x"}
    return {
        f".out.{dead}.abc123.tmp": None,  # the old naming, a dead pid
        f".out.{dead}.backup": None,
        ".out.old": None,
        ".out.0123456789abcdef.tmp": None,  # the new naming, no record
        ".out.fedcba9876543210.tmp": record,  # a record naming another token
        ".out.notes.tmp": "my notes",  # a file
    }


def test_files_named_like_temporaries_are_never_touched(tmp_path):
    out, dead = tmp_path / "out", _dead_pid()
    for name, body in _lookalikes(tmp_path, dead).items():
        if isinstance(body, str):
            (tmp_path / name).write_text(body)
            continue
        (tmp_path / name).mkdir()
        (tmp_path / name / "thesis.tex").write_text("mine")
        if body is not None:
            (tmp_path / name / ".assd-temporary").write_text(json.dumps(body))
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    write(out, "new", overwrite=False)
    write(out, "two", overwrite=True)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*")
             if p.is_file() and not p.is_relative_to(out)}  # fmt: skip
    assert after == before and content(out) == "two"


def _dead_pid() -> int:
    child = os.fork() if hasattr(os, "fork") else None
    if child == 0:  # pragma: no cover
        os._exit(0)
    if child is None:
        pytest.skip("needs fork")
    os.waitpid(child, 0)
    return child


def test_overwrite_takes_an_empty_folder_but_never_a_file_or_a_link(tmp_path):
    (tmp_path / "empty").mkdir()  # made by mkdir: nothing to lose
    with pytest.raises(FileExistsError, match="already exists"):
        write(tmp_path / "empty", "new", overwrite=False)
    write(tmp_path / "empty", "new", overwrite=True)
    assert content(tmp_path / "empty") == "new"
    (tmp_path / "file").write_text("mine")
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    for name in ("file", "link"):
        with pytest.raises(FileExistsError, match="only replaces output folders"):
            write(tmp_path / name, "new", overwrite=True)
    assert (tmp_path / "file").read_text() == "mine" and content(tmp_path / "empty") == "new"
