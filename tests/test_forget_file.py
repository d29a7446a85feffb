"""Forget files: a line is an id, a comment or blank; anything else is refused by line number.

The expected ids of every case are worked out by hand from the rule; the
table's ids are chosen so that the old splitting on ``,``/``#`` (or trimming)
would have named *other* rows.
"""

from __future__ import annotations

import pytest

from assd.data.table import read_forget_ids, read_forget_positions

KNOWN = ["1", "2", "10", "a,b", "a", "b", "x#1", "x", " 7", "7", "007", "r 1", "é"]

ACCEPTED = [
    ("1\n2\n", ["1", "2"]),
    ("a,b\n", ["a,b"]),  # an id holding a comma: not split into a and b
    ("x#1\n", ["x#1"]),  # an id holding a hash: not cut to x
    (" 7\n", [" 7"]),  # an id starting with a space: not trimmed to 7
    ("007\n", ["007"]),
    ("r 1\n", ["r 1"]),
    ("# a comment\n1\n", ["1"]),
    ("#a,b\n1\n", ["1"]),  # a commented-out line names nothing
    ("\n\n1\n\n", ["1"]),
    ("   \n1\n", ["1"]),  # a line of spaces only is blank
    ("\ufeff1\n", ["1"]),  # a byte-order mark
    ("1\r\n2\r\n", ["1", "2"]),  # Windows line ends
    ("1", ["1"]),  # no final newline
    ("é\n", ["é"]),
]

REFUSED = [
    ("1 \n", 1, "spaces around the id '1'"),
    ("1\n 2\n", 2, "spaces around the id '2'"),
    ("1, 2\n", 1, "more than an id"),
    ("1,2\n", 1, "more than an id"),
    ("a,b # mine\n", 1, "more than an id"),
    ("x#1  # note\n", 1, "more than an id"),
    ("10  # ten\n", 1, "more than an id"),
    ("1;2\n", 1, "more than an id"),
    ("1\t2\n", 1, "more than an id"),
    ("1_0\n", 1, "not a row id"),  # int() would read 10
    ("10.0\n", 1, "not a row id"),
    ("7.\n", 1, "not a row id"),
    ("0x1\n", 1, "not a row id"),
    ("id\n1\n", 1, "not a row id"),  # a header line
    ("1\n2\nzz9\n", 3, "not a row id"),
    ("A\n", 1, "not a row id"),  # ids are matched with their case
    ("\u00a07\n", 1, "spaces around the id '7'"),  # a no-break space, not the id ' 7'
    ("e\u0301\n", 1, "not a row id"),  # é spelt with a combining accent
]


@pytest.mark.parametrize(("text", "ids"), ACCEPTED, ids=[repr(t) for t, _ in ACCEPTED])
def test_each_line_is_taken_exactly(tmp_path, text, ids):
    path = tmp_path / "f.txt"
    path.write_bytes(text.encode("utf-8"))
    assert read_forget_ids(path, known=KNOWN) == ids


@pytest.mark.parametrize(("text", "line", "why"), REFUSED, ids=[repr(t) for t, *_ in REFUSED])
def test_a_line_that_is_not_an_id_is_refused_with_its_number(tmp_path, text, line, why):
    path = tmp_path / "f.txt"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(ValueError, match=f"line {line}: .*{why}"):
        read_forget_ids(path, known=KNOWN)


POSITIONS_OK = [("0\n3\n", [0, 3]), ("# c\n12\n", [12]), ("5\r\n", [5]), ("00\n", [0])]
POSITIONS_BAD = ["1_0\n", " 7\n", "7 \n", "-1\n", "+1\n", "3.0\n", "\u0661\n", "1e2\n",
                 "1,2\n", "1 # c\n", "0x10\n", "\uff11\n"]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), POSITIONS_OK)
def test_row_positions_are_plain_digits(tmp_path, text, expected):
    path = tmp_path / "f.txt"
    path.write_text(text, encoding="utf-8", newline="")
    assert read_forget_positions(path) == expected


@pytest.mark.parametrize("text", POSITIONS_BAD, ids=repr)
def test_anything_int_would_stretch_to_a_position_is_refused(tmp_path, text):
    path = tmp_path / "f.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: .*not a row position"):
        read_forget_positions(path)


def test_a_repeated_position_is_refused(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("3\n3\n")
    with pytest.raises(ValueError, match="more than once"):
        read_forget_positions(path)
