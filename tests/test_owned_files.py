"""--overwrite removes only what a manifest lists; temporaries are recognised by record.

Each test states a user's file (or folder) and checks, byte for byte, that it
is still there after assd wrote beside or over it.
"""

from __future__ import annotations

import json
import os

import pytest

from assd.store import manifest, publish, temporaries
from assd.store.checkpoints import write_folder
from assd.store.files import write_atomic


def write(folder, files: dict, *, overwrite=True) -> list[str]:
    with write_folder(folder, overwrite=overwrite) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
    return sorted(manifest.read_marker(folder)["files"])


def tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != manifest.MARKER}  # fmt: skip


USER_FILES = [
    {"notes.ipynb": "{}"},
    {"thesis/chapter1.tex": "mine", "thesis/refs.bib": "@book"},
    {"model.json.bak": "backup"},
    {".hidden": "x", "README": "y"},
    {"figures/mine.png": "png"},  # inside a folder assd also writes into
]


@pytest.mark.parametrize("added", USER_FILES, ids=[",".join(a) for a in USER_FILES])
def test_overwrite_keeps_files_the_user_added_to_an_assd_folder(tmp_path, added, caplog):
    out = tmp_path / "out"
    write(out, {"model.json": "old", "figures/a.png": "A", "gone.txt": "old only"})
    for name, text in added.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    listed = write(out, {"model.json": "new", "figures/a.png": "B"})
    assert listed == ["figures/a.png", "model.json"]
    expected = {"model.json": b"new", "figures/a.png": b"B",
                **{k: v.encode() for k, v in added.items()}}  # fmt: skip
    assert tree(out) == expected  # gone.txt (assd's, not written again) is gone
    assert "kept" in caplog.text and all(name in caplog.text for name in added)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_overwrite_of_a_folder_holding_only_assd_files_is_one_swap(tmp_path):
    out = tmp_path / "out"
    write(out, {"model.json": "old", "extra.txt": "old"})
    write(out, {"model.json": "new"})
    assert tree(out) == {"model.json": b"new"}


def test_a_new_file_landing_on_a_user_file_is_refused_and_nothing_changes(tmp_path):
    out = tmp_path / "out"
    write(out, {"model.json": "old"})
    (out / "report.md").write_text("my report")
    before = tree(out)
    with pytest.raises(FileExistsError, match=r"assd did not write.*report\.md.*kept at"):
        write(out, {"model.json": "new", "report.md": "assd's"})
    assert tree(out) == before


def test_an_old_style_folder_is_owned_only_for_the_names_assd_writes(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.json").write_text(json.dumps({"assd_version": "0.1"}))
    (out / "model.safetensors").write_text("w")
    (out / "analysis.py").write_text("print(1)")
    write(out, {"model.json": "new", "model.safetensors": "w2"})
    assert tree(out) == {"analysis.py": b"print(1)", "model.json": b"new",
                         "model.safetensors": b"w2"}  # fmt: skip


def test_a_marker_of_an_earlier_version_without_a_list_owns_only_assd_names(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / manifest.MARKER).write_text(json.dumps({"written_by": "assd"}))
    (out / "report.md").write_text("assd's")
    (out / "todo.txt").write_text("mine")
    write(out, {"model.json": "new"})
    assert tree(out) == {"model.json": b"new", "todo.txt": b"mine"}


LONG = [240, 250, 255]


@pytest.mark.parametrize("length", LONG)
def test_a_long_output_name_is_written(tmp_path, length):
    name = "m" * length
    write(tmp_path / name, {"model.json": "x"}, overwrite=False)
    write(tmp_path / name, {"model.json": "y"})
    write_atomic(tmp_path / ("f" * length), "text")
    assert (tmp_path / name / "model.json").read_text() == "y"
    assert (tmp_path / ("f" * length)).read_text() == "text"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "f" * length])


def test_a_long_multibyte_name_is_cut_between_characters():
    cut = temporaries.short_name("é" * 200)
    assert cut == "é" * 60 and len(os.fsencode(cut)) == 120


def test_a_file_temporary_left_by_a_crash_is_found_by_its_record(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    holder = temporaries.new_holder(target)
    (holder / "r.json").write_text("half")
    record = json.loads((holder / temporaries.RECORD).read_text())
    (holder / temporaries.RECORD).write_text(json.dumps({**record, "pid": 2**22 + 12345}))
    monkeypatch.setattr(temporaries, "alive", lambda pid: pid == os.getpid())
    write_atomic(target, "done")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_temporary_of_another_host_is_kept(tmp_path, monkeypatch):
    holder = temporaries.new_holder(tmp_path / "out")
    record = json.loads((holder / temporaries.RECORD).read_text())
    (holder / temporaries.RECORD).write_text(json.dumps({**record, "host": "elsewhere",
                                                         "pid": 2**22 + 1}))  # fmt: skip
    monkeypatch.setattr(temporaries, "alive", lambda pid: False)
    assert temporaries.clean_stale(tmp_path / "out") == []
    assert holder.is_dir()


FORGED = [
    {"assd_temporary": "short", "output": "out", "pid": 1},
    {"assd_temporary": "0" * 16, "output": "other", "pid": 1},
    {"assd_temporary": "0" * 16, "output": "out", "pid": "1"},
    ["not", "a", "dict"],
    "not json {",
]


@pytest.mark.parametrize("record", FORGED, ids=range(len(FORGED)))
def test_a_record_that_does_not_match_its_name_is_not_a_temporary(tmp_path, record):
    holder = tmp_path / ".out.0000000000000000.tmp"
    holder.mkdir()
    text = record if isinstance(record, str) else json.dumps(record)
    (holder / temporaries.RECORD).write_text(text)
    assert temporaries.read_record(holder, tmp_path / "out") is None
    assert temporaries.clean_stale(tmp_path / "out") == [] and holder.is_dir()


def test_publish_reports_the_kept_files(tmp_path):
    out = tmp_path / "out"
    write(out, {"a.txt": "1"})
    (out / "b.txt").write_text("mine")
    tmp = publish.new_temporary(out)
    (tmp / "a.txt").write_text("2")
    assert publish.publish_folder(tmp, out, overwrite=True) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
