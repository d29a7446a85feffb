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

__all__ = ["unlearn_markdown"]


def unlearn_markdown(report: dict, *, title: str = "Unlearning report") -> str:
    """Render :func:`assd.tabular.unlearn_rows`'s report as markdown."""
    method, result = report["method"], report["result"]
    options = ", ".join(f"{k}={v}" for k, v in method["options"].items()) or "defaults"
    lines = [
        f"# {title}",
        "",
        f"- method: `{method['name']}` ({options})",
        f"- rows forgotten: {report['n_forget']} of {report['n_train']} training rows",
        f"- time: {report['seconds']:.2f} s in all, {result['seconds']:.2f} s unlearning",
    ]
    if report.get("timings"):
        lines[-1] += " (" + ", ".join(f"{k} {v:.2f} s" for k, v in report["timings"].items()) + ")"
    if result.get("alpha") is not None:
        percentile = result.get("percentile")
        at = f" (percentile {percentile:.2f})" if percentile is not None else ""
        lines.append(f"- alpha: {result['alpha']:.4g}{at}, lambda: {result['dampening']}")
        lines.append(
            f"- parameters dampened: {result['n_dampened']} of {result['n_params']} "
            f"({100 * result['n_dampened'] / max(result['n_params'], 1):.2f} %)"
        )
    cache = report.get("importance_cache")
    if cache:
        state = "reused" if cache["hit"] else "saved" if cache["saved"] else "not cached"
        took = f", {cache['seconds']:.2f} s" if "seconds" in cache else ""
        lines.append(f"- training-data importance: {state}{took} ({cache['path']})")
    lines += ["", "## Accuracy", ""]
    rows = [
        [name, v["n"], f"{v['before']:.4f}", f"{v['after']:.4f}", _pp(v["after"] - v["before"])]
        for name, v in report["accuracy"].items()
    ]
    lines.append(markdown_table(["data", "rows", "before", "after", "change (pp)"], rows))
    lines.append("")
    lines.append("`forget` is measured against the labels as given (possibly the wrong ones).")
    if result.get("per_layer"):
        lines += ["", "## Parameters dampened per layer", ""]
        layer_rows = [[k, v["dampened"], v["elements"]] for k, v in result["per_layer"].items()]
        lines.append(markdown_table(["parameter", "dampened", "elements"], layer_rows))
    return "\n".join(lines) + "\n"


def _pp(delta: float) -> str:
    return f"{100 * delta:+.2f}"
