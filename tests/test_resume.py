"""An `assd experiment` killed mid-run resumes without redoing or duplicating work.

The kill lands at a fixed point: ``ResultLog.append`` is patched to die after
the third record (and to leave half a line behind, as a kill during a write
would), so the test does not depend on scheduling.
"""

import json

import pytest

from assd.cli import main
from assd.experiments.results import ResultLog


def command(data, out):
    return ["--no-progress", "experiment", "errors", "--out", str(out), "--data", str(data),
            "--rates", "5,10", "--seeds", "2", "--kinds", "uniform", "--n-train", "300",
            "--epochs", "2", "--methods", "mistake assd", "--no-progress"]  # fmt: skip


def lines(path):
    return path.read_text().splitlines() if path.is_file() else []


def keys(records):
    return [json.dumps(r["key"], sort_keys=True) for r in records]


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way catches it."""


@pytest.mark.parametrize("cut", [3])
def test_killed_experiment_resumes_where_it_stopped(
    tmp_path, flights_like, monkeypatch, capsys, cut
):
    data = tmp_path / "flights.csv"
    flights_like(data)
    out = tmp_path / "run"
    results = out / "results.jsonl"
    append, written = ResultLog.append, []

    def dying_append(self, record):
        if len(written) == cut:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record)[:25])  # torn: the kill came mid-write
            raise Killed
        append(self, record)
        written.append(record)

    monkeypatch.setattr(ResultLog, "append", dying_append)
    with pytest.raises(Killed):
        main(command(data, out))
    monkeypatch.setattr(ResultLog, "append", append)
    before = lines(results)
    assert len(before) == cut + 1 and not before[-1].endswith("}")  # + the torn line
    assert main(command(data, out)) == 0
    after = [json.loads(line) for line in lines(results)]
    assert len(keys(after)) == len(set(keys(after))) == 2 * 2 * 2  # rates x seeds x methods
    assert lines(results)[:cut] == before[:cut]  # finished lines kept, not redone
    fresh = tmp_path / "fresh"
    capsys.readouterr()
    assert main(command(data, fresh)) == 0
    out = capsys.readouterr()
    assert out.err == ""  # no progress bars when stderr is not a terminal
    assert out.out.rstrip().splitlines()[-1].startswith(f"wrote {fresh}/: results.jsonl")
    assert "What the columns mean" in out.out and "gap closed: (acc" in out.out
    assert "What the columns mean" in (fresh / "table.md").read_text()
    by_key = {k: r for k, r in zip(keys(after), after, strict=True)}
    for record in map(json.loads, lines(fresh / "results.jsonl")):
        resumed = by_key[json.dumps(record["key"], sort_keys=True)]
        assert resumed["test"] == record["test"]  # the resumed run computed the same numbers
