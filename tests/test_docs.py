"""What docs/tables.md and the README say about the table commands holds, and every
link in the docs points at a file that exists."""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assd.data import read_forget_ids
from assd.tabular import TrainConfig, train_table, trained_ids, unlearn_rows
from assd.tabular.defaults import fit_schedule

ROOT = Path(__file__).resolve().parents[1]
TABLES = (ROOT / "docs" / "tables.md").read_text(encoding="utf-8")


def test_the_schedule_table_is_the_rule():
    rows = re.findall(r"^\| ([\d,]+)(?: and more)? \| (\d+) \| (\d+) \| (\d+)", TABLES, re.M)
    assert len(rows) == 4
    for n, batch, epochs, steps in rows:
        n = int(n.replace(",", ""))
        assert fit_schedule(n) == (int(batch), int(epochs))
        assert math.ceil(n / int(batch)) * int(epochs) == int(steps)


def test_every_link_in_readme_and_docs_exists_and_no_missing_design_notes():
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links {target}"
        assert "DESIGN" not in text and "§" not in text, page.name


def _frame(n=120):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.random(n), "c": rng.choice(["a", "b"], n)})
    frame["label"] = np.where(frame.x > 0.5, "hi", "lo")
    return frame


def test_forget_file_syntax_as_documented(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("\ufeff# a comment line\n3\n5\n\n7\n")
    assert read_forget_ids(path) == ["3", "5", "7"]  # BOM, blanks, comment lines
    frame = _frame()
    trained = train_table(frame, target="label", split="none", config=TrainConfig(epochs=1))
    _, report = unlearn_rows(trained, frame, read_forget_ids(path))
    assert report["n_forget"] == 3  # 0-based row numbers without an id column
    for text, bad in (("id\n3\n", "'id'"), ("3.0\n", "'3.0'")):
        path.write_text(text)
        with pytest.raises(ValueError, match=f"not rows of the data, e.g. \\[{bad}\\]"):
            unlearn_rows(trained, frame, read_forget_ids(path))
    known = [str(i) for i in range(len(frame))]
    for text, why in (("3, 5\n", "more than an id"), ("7  # c\n", "more than an id"),
                      ("3 \n", "spaces around")):  # fmt: skip
        path.write_text(text)
        with pytest.raises(ValueError, match=f"line 1: .*{why}"):
            read_forget_ids(path, known=known)
    path.write_text("3\n3\n")
    with pytest.raises(ValueError, match="more than once"):
        read_forget_ids(path)


def test_a_random_split_is_drawn_by_the_seed():
    frame = _frame()
    first, again, other = (
        train_table(frame, target="label", split="random", config=TrainConfig(epochs=1, seed=s))
        for s in (1, 1, 2)
    )
    held = [set(range(len(frame))) - set(map(int, trained_ids(m, frame)))
            for m in (first, again, other)]  # fmt: skip
    assert held[0] == held[1] and held[0] != held[2] and len(held[0]) == 24
