"""Deletion requests that know their history: the ledger-aware ``assd unlearn`` path.

:func:`unlearn_request` wraps :func:`assd.tabular.unlearn_rows` with the
model's ledger (:class:`assd.Ledger`):

- rows that earlier requests forgot are left out of the training-set
  importance and of the retained rows, matched by id;
- a forget id that an earlier request forgot is refused unless ``again``;
- after the request, every earlier request's forget rows are re-checked on the
  new model with the evidence of their own verdict (their forget accuracy and
  which rows were misclassified right after them); a row that was
  misclassified then and is classified correctly now "came back", and with
  ``reforget`` is forgotten again in the same request;
- the cumulative drop of retained and held-out accuracy since the last full
  training is kept against a budget (default 2 points); a request that would
  exceed it is announced and, unless ``over_budget="apply"`` (the model is
  then marked "retrain due"), raises :class:`OverBudget` before anything is
  written.

Example:
    >>> import numpy as np, pandas as pd
    >>> from assd.tabular import TrainConfig, train_table, trained_ids
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.random(300)})
    >>> frame["label"] = np.where(frame.x > 0.5, "high", "low")
    >>> model = train_table(frame, target="label", config=TrainConfig(epochs=2))
    >>> ids = trained_ids(model, frame)
    >>> one, _ = unlearn_request(model, frame, ids[:5], over_budget="apply")
    >>> two, report = unlearn_request(one, frame, ids[5:10], over_budget="apply")
    >>> [e["kind"] for e in two.ledger.entries], report["ledger"]["excluded"]
    (['base', 'forget', 'forget'], 5)
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..store.fingerprint import fingerprint
from ..store.ledger import Ledger
from .model import TabularModel
from .pipeline import train_set_digest
from .recheck import own_evidence, recheck
from .unlearn import unlearn_rows

__all__ = ["DRIFT_BUDGET", "OverBudget", "history_of", "report_part", "unlearn_request"]

log = logging.getLogger("assd")

DRIFT_BUDGET = 2.0  # points of accuracy, on retained or held-out rows, since the last training
OVER_BUDGET = ("stop", "apply", "queue")
STRENGTH = {"lambda": "dampening", "n_dampened": "n_dampened", "share_dampened": "share_dampened"}


class OverBudget(ValueError):
    """A request that would take the cumulative drift past the budget (nothing written)."""

    def __init__(self, message: str, report: dict, ids: list[str] | None = None):
        super().__init__(message)
        self.report, self.ids = report, ids or []


def history_of(tabular: TabularModel) -> Ledger:
    """A verified copy of the model's ledger, or a new one whose base entry is the model."""
    if tabular.ledger is not None:
        head = tabular.extra.get("ledger", {}).get("head")
        tabular.ledger.verify(tabular.model, head=head)
        return tabular.ledger.copy()
    data = tabular.extra.get("data", {})
    earlier = tabular.extra.get("unlearned") or []
    if earlier:
        log.warning("this model was unlearned %d time(s) before it had a ledger; those rows are "
                    "known only by a digest, so they are not left out by id", len(earlier))
    metrics = tabular.extra.get("metrics", {})
    baseline = {name: m.get("accuracy") for name, m in metrics.items() if isinstance(m, dict)}
    return Ledger.start(tabular.model, recipe=tabular.extra.get("training", {}),
                        data={k: data.get(k) for k in ("source", "n_train", "train_set_sha256")},
                        baseline=baseline, before_ledger=earlier)  # fmt: skip


def unlearn_request(
    tabular: TabularModel,
    frame,
    forget_ids,
    *,
    hash_ids: bool = False,
    again: bool = False,
    reforget: bool = False,
    drift_budget: float = DRIFT_BUDGET,
    over_budget: str = "stop",
    queued: list | None = None,
    **options,
) -> tuple[TabularModel, dict]:
    """Forget ``forget_ids`` knowing the model's earlier requests (see the module docstring).

    Args:
        tabular, frame, forget_ids: as :func:`assd.tabular.unlearn_rows`; ``frame``
            may still hold the rows earlier requests forgot (they are needed to
            re-check those requests, and are left out of everything else).
        hash_ids: keep salted hashes of the ids in the ledger instead of the ids.
        again: forget ids that an earlier request forgot already (else refused).
        reforget: forget again, in this request, earlier rows that came back.
        drift_budget: points of retained / held-out accuracy that requests may
            cost in all since the last full training.
        over_budget: ``"stop"`` (raise :class:`OverBudget`), ``"queue"`` (raise it
            too; the caller queues the request) or ``"apply"`` (write it, marked
            "retrain due").
        queued: queued requests applied together with this one: ``[{"ids": [...],
            "time": ..., "source": ...}]``; their ids join ``forget_ids``.
        options: passed to :func:`assd.tabular.unlearn_rows`.

    Returns:
        ``(new model with its ledger, report)``; ``report["ledger"]`` holds what the new
        entry adds to the report (:func:`report_part`): re-checks, drift, rows left out.
    """
    if over_budget not in OVER_BUDGET:
        raise ValueError(f"over_budget must be one of {OVER_BUDGET}, got {over_budget!r}.")
    start = time.perf_counter()
    ledger = history_of(tabular)
    rows = tabular.task.encode(frame)  # once, for the ledger's checks and for unlearn_rows
    encoding = time.perf_counter() - start
    ids = [str(i) for i in forget_ids] + [str(i) for q in queued or () for i in q["ids"]]
    ids = list(dict.fromkeys(ids))
    batched = None if not queued else [{"time": q.get("time"), "source": q.get("source"),
                                        "n_ids": len(q["ids"])} for q in queued]  # fmt: skip
    earlier = ledger.forgotten(rows.ids)
    repeated = _repeats(ids, rows.ids[earlier], again)
    _warn_missing(ledger, rows, earlier)
    new, report, checks = _run(tabular, frame, ids, rows, earlier, repeated, ledger, options)
    back = _came_back(checks, reforget)
    if back and reforget:
        ids = list(dict.fromkeys(ids + back))
        repeated = _repeats(ids, rows.ids[earlier], True)
        new, report, checks = _run(tabular, frame, ids, rows, earlier, repeated, ledger, options)
        report["reforgotten"] = ledger.rows(back, hashed=hash_ids)["ids"]
        _came_back(checks, False)
    timings = report.setdefault("timings", {})
    timings["encode"] = round(timings.get("encode", 0.0) + encoding, 3)  # made here, not there
    report["came_back"] = [k for c in checks for k in c["came_back_keys"]]
    forgot, flags = own_evidence(tabular.model, new.model, rows, ids, earlier, repeated)
    entry = _entry(ledger, tabular, new, report, forgot, flags, checks, hash_ids, batched)
    entry["seconds"] = round(time.perf_counter() - start, 3)
    report["seconds"] = entry["seconds"]  # the whole request: its parts (encode too) add up
    try:
        _check_budget(entry, report, drift_budget, over_budget)
    except OverBudget as error:
        error.ids = ids  # the request's ids (its queued ones too), for the queue
        raise
    ledger.append("forget", **entry)
    new.ledger = ledger
    trained = ~rows.test & (rows.y >= 0).numpy()  # training_rows(rows), in one copy
    remaining = rows.subset(trained & ~ledger.forgotten(rows.ids))
    new.extra.setdefault("data", {}).update(n_train=len(remaining),
                                            train_set_sha256=train_set_digest(remaining))
    report["ledger"] = {**report_part(ledger.entries[-1]), "excluded": int(earlier.sum()),
                        "entries": len(ledger.entries)}  # fmt: skip
    return new, report


def report_part(entry: dict) -> dict:
    """What a ledger entry adds to a request's report: the same for the same request
    (no time, hash, ids or weights; the report has the method, verdict and accuracy)."""
    return {k: v for k, v in entry.items() if k not in _NOT_IN_REPORT}


_NOT_IN_REPORT = ("time", "hash", "parent_head", "seconds", "cost_seconds", "weights_before",
                  "weights_after", "rows", "evidence", "method", "verdict", "alpha", "strength",
                  "salt")  # fmt: skip


def _run(tabular, frame, ids, rows, earlier, repeated, ledger, options):
    exclude = set(rows.ids[earlier].tolist()) - set(repeated)
    new, report = unlearn_rows(tabular, frame, ids, exclude=exclude, encoded=rows, **options)
    tick = time.perf_counter()
    checks = recheck(ledger, new.model, rows)
    report.setdefault("timings", {})["recheck"] = round(time.perf_counter() - tick, 3)
    return new, report, checks


def _came_back(checks: list[dict], reforget: bool) -> list[str]:
    """The ids of earlier rows that came back (said in the log, kept out of the ledger)."""
    back = [i for c in checks for i in c.pop("came_back_ids")]
    if back:
        log.warning("%d row(s) that earlier requests forgot came back (classified correctly "
                    "again), e.g. %s; %s", len(back), back[:5],
                    "forgetting them again in this request" if reforget else
                    "--reforget forgets them again in this request")  # fmt: skip
    return back


def _repeats(ids: list[str], forgotten_ids, again: bool) -> list[str]:
    done = set(forgotten_ids.tolist())
    repeated = [i for i in ids if i in done]
    if repeated and not again:
        raise ValueError(
            f"{len(repeated)} forget id(s) were forgotten by earlier requests already, e.g. "
            f"{repeated[:5]}; `assd history` lists them. Leave them out, or pass --again "
            "(again=True) to forget them once more."
        )
    return repeated


def _warn_missing(ledger: Ledger, rows, earlier: np.ndarray) -> None:
    """Warn when the table lacks rows the model was trained on and no request forgot."""
    train = ~rows.test & (rows.y >= 0).numpy()
    baseline = ledger.baseline_entry()
    n_train = (baseline.get("data") or {}).get("n_train") or baseline.get("n_train")
    since = [e for e in ledger.requests() if e["index"] > baseline["index"]]
    if n_train is None:
        return
    expected = n_train - sum(len(e["rows"]["ids"]) for e in since)
    present = int((train & ~earlier).sum())
    if present < expected:
        log.warning(
            "--data holds %d training rows that no request forgot, but the model was trained "
            "on %d of them: %d row(s) are missing. Pass the table the model was trained on "
            "(rows earlier requests forgot may stay in it: they are left out by id).",
            present, expected, expected - present,
        )  # fmt: skip
    gone = sum(len(e["rows"]["ids"]) for e in ledger.requests()) - int((earlier & train).sum())
    if gone > 0:
        log.warning("%d row(s) that earlier requests forgot are not in --data: they cannot be "
                    "re-checked", gone)  # fmt: skip


def _drift_step(acc: dict, outcome: dict) -> dict:
    """Points lost by this request on retained and held-out rows: on the rows the guard
    watched where it watched them (an error-correction request sets aside rows that carry
    the same error, :mod:`assd.tabular.guarded`), else on every row."""
    before, after, step = outcome.get("before") or {}, outcome.get("after") or {}, {}
    for k in ("retain", "test"):
        pair = [(before.get(k) or {}).get("accuracy"), (after.get(k) or {}).get("accuracy")]
        if None not in pair:
            step[k] = round(100 * (pair[0] - pair[1]), 4)
        elif k in acc:
            step[k] = round(100 * (acc[k]["before"] - acc[k]["after"]), 4)
    return step


def _entry(ledger, tabular, new, report, forgot, flags, checks, hash_ids, batched) -> dict:
    result, acc = report.get("result") or {}, report["accuracy"]
    previous = ledger.drift()
    step = _drift_step(acc, result.get("outcome") or {})
    drift = {k: round(previous.get(k, 0.0) + v, 4) for k, v in step.items()}
    return {
        "rows": ledger.rows(forgot, hashed=hash_ids),
        "n_rows": len(forgot),
        "batched": batched,
        "method": report["method"],
        "alpha": result.get("alpha"),
        "strength": {k: result.get(v) for k, v in STRENGTH.items()},
        "verdict": result.get("verdict"),
        "evidence": {"accuracy": acc, **flags},
        "reverified": checks,
        "weights_before": ledger.weights,
        "weights_after": fingerprint(new.model),
        "drift": drift,
        "drift_step": step,
        "n_train": report["n_train"] - report["n_forget"],
        "retrain_due": ledger.retrain_due,
        "cost_seconds": report["seconds"],
    }


def _check_budget(entry: dict, report: dict, budget: float, over_budget: str) -> None:
    worst = max(entry["drift"].values(), default=0.0)
    entry["drift_budget"] = budget
    report["drift"] = {"cumulative": entry["drift"], "step": entry["drift_step"],
                       "budget": budget, "over": worst > budget}  # fmt: skip
    if worst <= budget:
        last = max(entry["drift_step"].values(), default=0.0)
        if last > 0 and worst + last > budget:
            note = "retrain soon: another request like this one would exceed the drift budget"
            report["drift"]["note"] = entry["drift_note"] = note
            log.warning("%s (%s of %g points)", note, _points(entry["drift"]), budget)
        return
    message = (
        f"retrain due: this request would take the drop since the last full training to "
        f"{_points(entry['drift'])}, over the budget of {budget:g} points. Nothing was written. "
        "Apply it anyway and mark the model 'retrain due' (--over-budget apply), queue it "
        "(--over-budget queue --queue FILE), or retrain first (`assd retrain`)."
    )
    if over_budget != "apply":
        raise OverBudget(message, report)
    log.warning("%s", message.replace(" Nothing was written.", "").split(" Apply")[0] +
                " Applied anyway (--over-budget apply): the model is marked 'retrain due'.")
    entry["retrain_due"] = True


def _points(drift: dict) -> str:
    return ", ".join(f"{v:.2f} points on {k}" for k, v in drift.items())

