"""The markdown report of an unlearning request (``report.md`` beside ``report.json``).

Example:
    >>> report = {"method": {"name": "assd", "options": {}}, "n_forget": 3, "n_train": 100,
    ...     "seconds": 0.5, "importance_cache": None,
    ...     "result": {"alpha": 2.0, "percentile": 98.0, "dampening": 1.0, "n_dampened": 7,
    ...                "n_params": 50, "seconds": 0.4, "per_layer": {}},
    ...     "accuracy": {"test": {"before": 0.5, "after": 0.6, "n": 10}}}
    >>> "| test | 10 | 0.5000 | 0.6000 | +10.00 |" in unlearn_markdown(report)
    True
"""

from __future__ import annotations

from ..reports import markdown_table

__all__ = ["cache_line", "legend_markdown", "metrics_markdown", "time_line", "unlearn_markdown"]


def unlearn_markdown(report: dict, *, title: str = "Unlearning report") -> str:
    """Render :func:`assd.tabular.unlearn_rows`'s report as markdown."""
    method, result = report["method"], report["result"]
    options = ", ".join(f"{k}={v}" for k, v in method["options"].items()) or "defaults"
    lines = [
        f"# {title}{_headline(result.get('outcome'))}",
        "",
        f"- method: `{method['name']}` ({options})",
        f"- rows forgotten: {report['n_forget']} of {report['n_train']} training rows",
        time_line(report),
    ]
    if result.get("alpha") is not None:
        percentile = result.get("percentile")
        at = f" (percentile {percentile:.2f})" if percentile is not None else ""
        lines.append(f"- alpha: {result['alpha']:.4g}{at}, lambda: {result['dampening']}")
        lines.append(
            f"- parameters dampened: {result['n_dampened']} of {result['n_params']} "
            f"({100 * result['n_dampened'] / max(result['n_params'], 1):.2f} %)"
        )
    lines += _outcome_lines(result.get("outcome"))
    lines += _guard_lines(report.get("guard"))
    if report.get("importance_cache"):
        lines.append(cache_line(report["importance_cache"]))
    lines += ["", "## Accuracy", ""]
    rows = [
        [name, v["n"], f"{v['before']:.4f}", f"{v['after']:.4f}", _pp(v["after"] - v["before"])]
        for name, v in report["accuracy"].items() if v["before"] is not None
    ]
    lines.append(markdown_table(["data", "rows", "before", "after", "change (pp)"], rows))
    lines += _task_lines(report["accuracy"])
    lines.append("")
    privacy = (report.get("guard") or {}).get("reason") == "privacy"  # rows right, removed
    lines.append("`forget` is measured against the labels as given"
                 + ("." if privacy else " (possibly the wrong ones)."))
    if report.get("metrics"):
        lines += ["", metrics_markdown(report["metrics"])]
    if result.get("per_layer"):
        lines += ["", "## Parameters dampened per layer", ""]
        layer_rows = [[k, v["dampened"], v["elements"]] for k, v in result["per_layer"].items()]
        lines.append(markdown_table(["parameter", "dampened", "elements"], layer_rows))
    aside = any(name.endswith(SET_ASIDE) for name in report["accuracy"])
    lines += ["", legend_markdown(set_aside=aside)]
    return "\n".join(lines) + "\n"


def _task_lines(scores: dict) -> list[str]:
    """A causal LM's perplexity and extraction, or the loss, per set (own-model reports)."""
    keys = [k for k in ("perplexity", "extraction", "loss") if any(k in v for v in scores.values())]
    if not keys:
        return []
    rows = [[name] + [f"{v[k]['before']:.4g} -> {v[k]['after']:.4g}" if k in v else ""
                      for k in keys] for name, v in scores.items()]  # fmt: skip
    return ["", "Token accuracy above (sequence tasks); the task's own figures:", "",
            markdown_table(["data", *keys], rows)]  # fmt: skip


def time_line(report: dict) -> str:
    """``- time: T s = encode + unlearn + evaluate (+ other)``, parts that add up to T."""
    total, timings = report["seconds"], dict(report.get("timings") or {})
    if not timings:
        return f"- time: {total:.2f} s"
    timings["other"] = max(total - sum(timings.values()), 0.0)
    parts = " + ".join(f"{k} {v:.2f} s" for k, v in timings.items())
    line = f"- time: {total:.2f} s = {parts}"
    cache, method_s = report.get("importance_cache"), report["result"].get("seconds")
    if cache and cache.get("seconds") is not None and method_s is not None:
        what = "loading" if cache.get("hit") else "computing"
        line += (
            f"; unlearn includes {what} the training-data importance ({cache['seconds']:.2f} s) "
            f"and the method's own steps ({method_s:.2f} s)"
        )
    return line


def cache_line(cache: dict) -> str:
    """Where the training-data importance came from, without printing a missing path."""
    if cache.get("hit"):
        state = f"reused from {cache['path']}"
    elif cache.get("saved"):
        state = f"computed and saved to {cache['path']}"
    elif cache.get("path"):
        state = f"computed, could not be saved to {cache['path']}"
    else:
        state = "computed, not cached (" + cache.get("note", "no cache folder") + ")"
    took = f" in {cache['seconds']:.2f} s" if cache.get("seconds") is not None else ""
    return f"- training-data importance: {state}{took}"


def metrics_markdown(metrics: dict) -> str:
    """The ``## Beyond accuracy`` section: balanced accuracy, macro-F1, baseline, recall."""
    lines = ["## Beyond accuracy", ""]
    rows, flags = [], []
    for name, m in metrics.items():
        before, after = m["before"], m["after"]
        rows.append([
            name, f"{before['balanced_accuracy']:.4f}", f"{after['balanced_accuracy']:.4f}",
            f"{before['macro_f1']:.4f}", f"{after['macro_f1']:.4f}",
            f"{after['majority_baseline']:.4f}", _yes(before), _yes(after),
        ])  # fmt: skip
        if not after["beats_baseline"] and not _expected_low(name):
            flags.append(name)
    header = ["data", "balanced before", "balanced after", "macro-F1 before", "macro-F1 after",
              "baseline", "above baseline before", "above baseline after"]  # fmt: skip
    lines.append(markdown_table(header, rows))
    if flags:
        lines += ["", f"**Not above the majority-class baseline after unlearning:** "
                  f"{', '.join(flags)}."]  # fmt: skip
    classes = list(next(iter(metrics.values()))["after"]["recall"])
    recall_rows = [
        [name, *(f"{_f(m['before']['recall'][c])} → {_f(m['after']['recall'][c])}"
                 for c in classes)]
        for name, m in metrics.items()
    ]  # fmt: skip
    lines += ["", "Recall per class, before → after:", ""]
    lines.append(markdown_table(["data", *classes], recall_rows))
    return "\n".join(lines)


def _expected_low(name: str) -> bool:
    """Sets scored against labels the request declares forgotten or likely wrong: the forget
    rows, and the rows the guard set aside. Below the baseline there is no alarm (the
    table's column still says so)."""
    return name == "forget" or name.endswith(SET_ASIDE)


SET_ASIDE = "(set aside by the guard)"  # the suffix of those sets' names (assd.tabular.unlearn)


def legend_markdown(*, set_aside: bool = False) -> str:
    """What the report's figures mean (``set_aside``: the report has such rows)."""
    aside = (
        "- (set aside by the guard): retained or held-out rows the retain guard did not "
        "count as damage (reason errors: they likely carry the forget rows' error); the "
        "verdict's retain and test are the rows it watched (their number is in the verdict), "
        "the table's retain and test are all of them.\n"
    ) if set_aside else ""
    return (
        "## What the figures mean\n\n"
        "- forget: the rows named in the forget file; retain: the other training rows; "
        "test: the rows the model's split held out; other names: the --eval-data tables.\n"
        f"{aside}"
        "- before / after: the model given, and the model written.\n"
        "- change (pp): after − before, in percentage points.\n"
        "- alpha: the selection threshold on I_Df / I_D; a weight whose ratio is above it "
        "is dampened (multiplied by min(lambda · I_D / I_Df, 1)).\n"
        "- balanced: mean of the per-class recalls; macro-F1: mean over classes of the "
        "F1 score; recall of a class: share of its rows predicted right; baseline: "
        "accuracy of always answering the training rows' most common class.\n"
    )


def _yes(summary: dict) -> str:
    return "yes" if summary["beats_baseline"] else "**no**"


def _f(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"


def _pp(delta: float) -> str:
    return f"{100 * delta:+.2f}"


def _guard_lines(guard: dict | None) -> list[str]:
    """What the retain guard watched: its limit, the request's reason, what it set aside."""
    if not guard or guard.get("limit") is None:
        return []
    line = f"- retain guard: limit {100 * guard['limit']:.2f} pp, reason {guard['reason']}"
    if guard["reason"] == "privacy":
        return [line + " (every retained and held-out row watched)"]
    groups = ", ".join(g["group"] for g in guard["groups"][:5])
    more = f" and {len(guard['groups']) - 5} more" if len(guard["groups"]) > 5 else ""
    where = f" in {len(guard['groups'])} group(s) the forget rows dominate ({groups}{more})"
    declared = guard.get("held_out_declared") or 0
    named = f", {declared} of them named in the forget file" if declared else ""
    return [line + f": {guard['held_out_set_aside']} held-out and {guard['retain_set_aside']} "
            f"retained row(s) likely carrying the same error not counted as damage"
            f"{where if guard['groups'] else ''}{named}"]  # fmt: skip


def _headline(outcome: dict | None) -> str:
    """``: <what the guard did, with figures>`` when the retain guard changed the request, or
    ``: <the repair, with figures>`` when the result was repaired (trained) after dampening."""
    change = ((outcome or {}).get("guard") or {}).get("changed")
    if change:
        return f": {change['headline']}"
    epochs = ((outcome or {}).get("target") or {}).get("repair_epochs")
    if epochs:
        share = 100 * outcome["n_changed"] / max(outcome["n_elements"], 1)
        return (f": repaired after dampening ({epochs} epoch(s) of training on the retained "
                f"rows; {share:.2f} % of the weights changed)")
    return ""


def _outcome_lines(outcome: dict | None) -> list[str]:
    """Weights that actually changed, the guard's verdict and the whole verdict (if measured)."""
    if not outcome:
        return []
    share = 100 * outcome["n_changed"] / max(outcome["n_elements"], 1)
    lines = [f"- weights that changed value: {outcome['n_changed']} of "
             f"{outcome['n_elements']} ({share:.2f} %)"]  # fmt: skip
    if len(outcome.get("tries") or []) > 1:
        lines.append(f"- strengths tried: {len(outcome['tries'])}")
    lines.append(f"- verdict: {outcome['verdict']}")
    target = outcome.get("target") or {}
    if target.get("basis") == "references":
        source, took = target.get("references_from"), target.get("references_seconds", 0.0)
        how = {"cache": f"taken from the cache (trained earlier in {took:.2f} s)",
               "training": f"trained for this request in {took:.2f} s"}.get(source, "given")
        lines.append(f"- reference models: {target['n_references']}, {how}")
    return lines
