"""The counts of docs/reliability.md: inputs tried, refused, handled, faults injected, nothing lost.

Runs the reliability suites (:data:`SUITES`) under pytest with a small plugin
that records every test case (one parametrised case is one designed input or
one injected fault) and its outcome, and sorts each case by a fixed rule
(:func:`category`):

- ``fault``: a case of ``tests/test_faults.py`` or ``tests/test_safe_files.py``
  (a crash, a kill, an error, a race or a full disk injected while publishing);
- ``refused``: a case whose test name says the input is refused (``refus``,
  ``clear_error``, ``is_named``, ``may_not``, ``advice``, ``said_so``,
  ``not_called_corrupt``, ``checks_its``, ``checked_like``): it must fail with a
  message naming what is wrong;
- ``handled``: every other case: a valid or unusual input that must be
  accepted and give the result stated.

"Nothing lost" counts the cases that compare the user's files byte for byte
before and after (:data:`LOSS_CHECKS`) and how many of them failed. A
hypothesis property counts as one case; ``examples`` adds up the most
examples each may draw.

Usage:
    python benchmarks/reliability_counts.py            # run the suites, print the counts
    python benchmarks/reliability_counts.py --write    # ... and put them in the docs
    python benchmarks/reliability_counts.py --collect  # only collect (no outcomes)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = [
    "tests/test_bad_inputs.py", "tests/test_faults.py", "tests/test_safe_files.py",
    "tests/test_fuzz_tables.py", "tests/test_owned_files.py", "tests/test_experiment_folder.py",
    "tests/test_forget_file.py", "tests/test_column_types.py", "tests/test_dates_and_roles.py",
    "tests/test_finite_features.py", "tests/test_model_files.py", "tests/test_own_messages.py",
    "tests/test_table_messages.py", "tests/test_option_validation.py",
]  # fmt: skip
FAULT_FILES = ("test_faults.py", "test_safe_files.py")
REFUSED = re.compile(
    r"refus|clear_error|is_named|may_not|advice|said_so|not_called_corrupt|checks_its|checked_like"
)
SKIPPED = re.compile(r"doc_is_current|debug_shows")  # checks of the suite itself, no input
LOSS_CHECKS = re.compile(
    r"test_faults\.py|test_safe_files\.py|test_owned_files\.py|test_experiment_folder\.py"
    r"|test_fuzz_tables\.py|test_bad_inputs\.py::test_bad_input_gets_a_clear_error"
)


def category(nodeid: str) -> str | None:
    """``fault``, ``refused``, ``handled``, or None for a check that tries no input."""
    path, _, name = nodeid.partition("::")
    if SKIPPED.search(name):
        return None
    if path.endswith(FAULT_FILES):
        return "fault"
    return "refused" if REFUSED.search(name.split("[")[0]) else "handled"


class Recorder:
    """A pytest plugin: every collected case, its hypothesis budget and its outcome."""

    def __init__(self):
        self.cases: dict[str, dict] = {}

    def pytest_collection_modifyitems(self, items):
        for item in items:
            settings = getattr(getattr(item, "obj", None), "_hypothesis_internal_use_settings",
                               None)  # fmt: skip
            examples = settings.max_examples if settings is not None else 0
            self.cases[item.nodeid] = {"examples": examples, "outcome": None}

    def pytest_runtest_logreport(self, report):
        case = self.cases.setdefault(report.nodeid, {"examples": 0, "outcome": None})
        counted = report.when == "call" or report.outcome != "passed"
        if counted and case["outcome"] in (None, "passed"):
            case["outcome"] = report.outcome


def counts(cases: dict[str, dict], *, ran: bool) -> dict:
    """The figures of the docs from the recorded cases."""
    by = Counter()
    examples = 0
    failed = Counter()
    for nodeid, case in cases.items():
        kind = category(nodeid)
        if kind is None:
            continue
        by[kind] += 1
        examples += case["examples"]
        if ran and case["outcome"] != "passed":
            failed[kind] += 1
    loss = [n for n in cases if category(n) and LOSS_CHECKS.search(n)]
    out = {
        "inputs_tried": by["refused"] + by["handled"], "refused": by["refused"],
        "handled": by["handled"], "faults_injected": by["fault"],
        "hypothesis_examples_at_most": examples, "loss_checks": len(loss),
    }  # fmt: skip
    if ran:
        out["failed"] = dict(failed)
        out["user_files_lost"] = sum(cases[n]["outcome"] != "passed" for n in loss)
    return out


def run(collect_only: bool) -> dict:
    import pytest

    recorder = Recorder()
    args = ["-q", "-p", "no:cacheprovider", *SUITES]
    code = pytest.main([*args, "--collect-only"] if collect_only else args, plugins=[recorder])
    if collect_only and code != 0:
        raise SystemExit(f"collection failed (pytest exit code {code})")
    return counts(recorder.cases, ran=not collect_only)


BEGIN, END = "<!-- counts: benchmarks/reliability_counts.py -->", "<!-- /counts -->"
COMMAND = "OMP_WAIT_POLICY=PASSIVE python benchmarks/reliability_counts.py --write"


def block(result: dict) -> str:
    """The counts section of docs/reliability.md (kept as is when the doc is re-rendered)."""
    lost = result["user_files_lost"]
    failed = sum(result["failed"].values())
    return "\n".join([
        BEGIN,
        "## Counts over all reliability suites",
        "",
        f"Produced by `{COMMAND}`, which runs the {len(SUITES)} suites (the bad-input matrix",
        "above, the fault injection, the fuzzed tables and the round-3 suites on temporaries,",
        "ownership, forget files, column types, dates, float32 range and model files) and",
        "sorts every case by the rule in its docstring.",
        "",
        "| count | value |",
        "|---|---|",
        f"| inputs tried (designed cases; a hypothesis property counts once) | "
        f"{result['inputs_tried']} |",
        f"| ... refused with a message naming what is wrong | {result['refused']} |",
        f"| ... accepted and handled as stated | {result['handled']} |",
        f"| examples drawn by hypothesis properties, at most | "
        f"{result['hypothesis_examples_at_most']} |",
        f"| faults injected (crash, kill, error, race, full disk, look-alike files) | "
        f"{result['faults_injected']} |",
        f"| cases comparing the user's files byte for byte before and after | "
        f"{result['loss_checks']} |",
        f"| ... in which a user's file changed, moved or vanished | {lost} |",
        f"| cases failed | {failed} |",
        END,
    ])


def write_block(text: str, doc: Path) -> None:
    current = doc.read_text(encoding="utf-8")
    if BEGIN in current:
        head, rest = current.split(BEGIN, 1)
        current = head + text + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    doc.write_text(current, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", action="store_true", help="count without running")
    parser.add_argument("--write", action="store_true", help="update docs/reliability.md")
    args = parser.parse_args()
    import contextlib
    import io
    import os

    os.chdir(ROOT)
    with contextlib.redirect_stdout(io.StringIO() if args.collect else sys.stderr):
        result = run(args.collect)
    print(json.dumps(result, indent=1, sort_keys=True))
    if args.write and not args.collect:
        write_block(block(result), ROOT / "docs" / "reliability.md")


if __name__ == "__main__":
    main()
