"""An experiment --out is new or an experiment's own folder; a user's files are never touched."""

from __future__ import annotations

import json

import pytest

from assd.cli import main
from assd.experiments.folder import EXPERIMENT_MARKER, claim_folder
from assd.experiments.results import ResultLog

RECORD = {"key": {"seed": 0}, "config": {}, "environment": {}, "acc": 0.5}

USER_FOLDERS = [
    {"table.md": "# my table\n"},
    {"summary.json": "[1, 2]"},
    {"results.jsonl": '{"mine": 1}'},  # no final newline: not a torn line of assd's
    {"results.jsonl": '{"mine": 1}\n'},  # complete lines, but not experiment records
    {"results.jsonl": json.dumps(RECORD)},  # a record without its newline: not assd's
    {"notes.txt": "x", "figures/plot.png": "png"},
    {"results.jsonl": "\xff\xfe garbage"},
]


def files(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


@pytest.mark.parametrize("kind", ["errors", "forget"])
@pytest.mark.parametrize("content", USER_FOLDERS, ids=range(len(USER_FOLDERS)))
def test_a_folder_of_the_users_is_refused_unchanged(tmp_path, content, kind):
    out = tmp_path / "mine"
    for name, text in content.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = files(out)
    with pytest.raises(FileExistsError, match="an experiment did not make"):
        claim_folder(out, kind=kind)
    assert files(out) == before


def test_the_cli_refuses_a_users_folder_with_exit_2(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "table.md").write_text("# mine")
    code = main(["experiment", "errors", "--out", str(out), "--seeds", "1"])
    assert code == 2 and "an experiment did not make" in capsys.readouterr().err
    assert files(out) == {"table.md": b"# mine"}


def test_new_empty_own_and_earlier_folders_are_accepted(tmp_path):
    claim_folder(tmp_path / "new", kind="errors")
    (tmp_path / "empty").mkdir()
    claim_folder(tmp_path / "empty", kind="errors")
    earlier = tmp_path / "earlier"  # an experiment folder of an earlier version
    earlier.mkdir()
    (earlier / "results.jsonl").write_text(json.dumps(RECORD) + "\n")
    (earlier / "table.md").write_text("# table")
    claim_folder(earlier, kind="errors")
    for name in ("new", "empty", "earlier"):
        marker = json.loads((tmp_path / name / EXPERIMENT_MARKER).read_text())
        assert marker == {"experiment": "errors"}
        claim_folder(tmp_path / name, kind="errors")  # a re-run resumes


def test_another_kind_of_experiment_and_files_are_refused(tmp_path):
    claim_folder(tmp_path / "e", kind="errors")
    with pytest.raises(FileExistsError, match="assd experiment errors"):
        claim_folder(tmp_path / "e", kind="forget")
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        claim_folder(tmp_path / "f", kind="forget")
    assert (tmp_path / "f").read_text() == "x"


def test_a_complete_last_record_without_newline_is_kept(tmp_path):
    log = ResultLog(tmp_path / "results.jsonl")
    log.path.write_text(json.dumps(RECORD))
    log.append({**RECORD, "key": {"seed": 1}})
    assert [r["key"]["seed"] for r in log.records()] == [0, 1]


def test_a_torn_last_line_is_still_cut_off(tmp_path):
    log = ResultLog(tmp_path / "results.jsonl")
    log.path.write_text(json.dumps(RECORD) + "\n" + '{"key": {"se')
    log.append({**RECORD, "key": {"seed": 1}})
    assert [r["key"]["seed"] for r in log.records()] == [0, 1]


def test_a_second_writer_waits_and_leaves_the_first_writers_line_whole(tmp_path):
    """Another run holds the log's lock half-way through writing a line: an append must
    neither cut that line off as torn nor write into the middle of it; once the line is
    finished and the lock released, both records are there, whole."""
    import fcntl
    import threading

    path = tmp_path / "results.jsonl"
    log = ResultLog(path)
    first = json.dumps({"key": {"seed": 0}, "acc": 0.5}, sort_keys=True) + "\n"
    with open(path, "ab") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        other.write(first[:10].encode())
        other.flush()
        writer = threading.Thread(target=log.append, args=({"key": {"seed": 1}, "acc": 0.7},))
        writer.start()
        writer.join(timeout=0.5)
        assert writer.is_alive()  # waiting for the lock
        assert path.read_text() == first[:10]  # the half line is neither cut nor written into
        other.write(first[10:].encode())
        other.flush()
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert [r["key"]["seed"] for r in log.records()] == [0, 1]
    assert path.read_text().splitlines()[0] == first.strip()
