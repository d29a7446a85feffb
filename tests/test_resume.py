"""An `assd experiment` killed mid-run resumes without redoing or duplicating work."""

import json
import os
import signal
import subprocess
import sys
import time


def command(data, out):
    return [sys.executable, "-m", "assd", "experiment", "errors", "--out", str(out),
            "--data", str(data), "--rates", "5,10", "--seeds", "2", "--kinds", "uniform",
            "--n-train", "300", "--epochs", "2", "--methods", "mistake assd",
            "--no-progress"]  # fmt: skip


def lines(path):
    return path.read_text().splitlines() if path.is_file() else []


def keys(records):
    return [json.dumps(r["key"], sort_keys=True) for r in records]


def test_killed_experiment_resumes_where_it_stopped(tmp_path, flights_like):
    data = tmp_path / "flights.csv"
    flights_like(data)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    results = out / "results.jsonl"
    child = subprocess.Popen(command(data, out), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not lines(results) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = lines(results)
    assert 0 < len(before) < 8, "the kill must land after the first cell and before the last"
    done = subprocess.run(command(data, out), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = [json.loads(line) for line in lines(results)]
    assert len(keys(after)) == len(set(keys(after))) == 2 * 2 * 2  # rates x seeds x methods
    assert lines(results)[: len(before)] == before  # finished lines kept, not redone
    fresh = tmp_path / "fresh"
    assert subprocess.run(command(data, fresh), env=env, capture_output=True).returncode == 0
    by_key = {k: r for k, r in zip(keys(after), after, strict=True)}
    for record in map(json.loads, lines(fresh / "results.jsonl")):
        resumed = by_key[json.dumps(record["key"], sort_keys=True)]
        assert resumed["test"] == record["test"]  # the resumed run computed the same numbers
