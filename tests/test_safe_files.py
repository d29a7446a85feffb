"""Outputs are atomic: a writer killed mid-write leaves the old file intact."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from assd.store.files import atomic_path
    from assd.store.checkpoints import write_folder

    kind, target = sys.argv[1], Path(sys.argv[2])
    if kind == "file":
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"new" * 100_000)
                handle.flush()
                print("half written", flush=True)
                time.sleep(60)
    else:
        with write_folder(target, overwrite=True) as tmp:
            (tmp / "model.safetensors").write_bytes(b"new" * 100_000)
            print("half written", flush=True)
            time.sleep(60)
    """
)


def kill_mid_write(kind: str, target) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, kind, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "half written"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_killed_writer_leaves_the_old_output_intact(tmp_path, kind):
    if kind == "file":
        target = tmp_path / "report.json"
        target.write_bytes(b"old")
        kill_mid_write(kind, target)
        assert target.read_bytes() == b"old"
    else:
        target = tmp_path / "model"
        target.mkdir()
        (target / "model.safetensors").write_bytes(b"old")
        (target / ".assd-output").write_text("{}")  # an earlier assd output: replaceable
        kill_mid_write(kind, target)
        assert sorted(p.name for p in target.iterdir()) == [".assd-output", "model.safetensors"]
        assert (target / "model.safetensors").read_bytes() == b"old"
    # whatever the killed writer left is hidden and never under the final name
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != target.name]
    assert all(name.startswith(f".{target.name}.") for name in leftovers)
