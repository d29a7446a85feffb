"""How ``assd history`` prints a ledger: one line per entry, then the re-checks of each."""

from __future__ import annotations

__all__ = ["format_history", "ledger_section"]


def format_history(ledger) -> str:
    """Text of a ledger: entries, rows, method, verdict evidence, re-checks and drift."""
    lines = [f"{'#':>3}  {'kind':<8} {'time (UTC)':<20} {'rows':>6}  {'method':<10} "
             f"{'alpha':>9}  {'forget acc':<13} {'drift r/t (pts)':<16} note"]  # fmt: skip
    for entry in ledger.entries:
        lines.append(_line(entry))
        for check in entry.get("reverified") or []:
            lines.append(_check_line(check))
    return "\n".join(lines)


def _line(entry: dict) -> str:
    kind, rows = entry["kind"], entry.get("rows") or {}
    n = str(len(rows.get("ids", []))) + ("h" if rows.get("hashed") else "") if rows else "-"
    method = (entry.get("method") or {}).get("name", "-")
    alpha = entry.get("alpha")
    forget = ((entry.get("evidence") or {}).get("accuracy") or {}).get("forget")
    acc = f"{forget['before']:.3f}->{forget['after']:.3f}" if forget else "-"
    drift = entry.get("drift") or {}
    drifted = "/".join(f"{drift[k]:+.2f}" for k in ("retain", "test") if k in drift) or "-"
    notes = []
    if kind == "base":
        notes.append(f"trained on {(entry.get('data') or {}).get('n_train')} rows")
    if kind == "retrain":
        notes.append(f"retrained without {entry.get('n_excluded')} rows; new drift baseline")
    if entry.get("batched"):
        notes.append(f"{len(entry['batched'])} queued requests together")
    if entry.get("retrain_due"):
        notes.append("RETRAIN DUE")
    alpha_text = "-" if alpha is None else f"{alpha:.4g}"
    return (f"{entry['index']:>3}  {kind:<8} {entry.get('time', ''):<20} {n:>6}  {method:<10} "
            f"{alpha_text:>9}  {acc:<13} {drifted:<16} {'; '.join(notes)}")  # fmt: skip


def _check_line(check: dict) -> str:
    if not check["checked"]:
        return f"       re-check of entry {check['entry']}: its rows are not in the data"
    state = "holds" if check["holds"] else f"{check['came_back']} row(s) CAME BACK"
    if check.get("retrained_without"):
        state = "retrained without its rows since"
    missing = f", {check['missing']} not in the data" if check["missing"] else ""
    then, now = check["forget_accuracy_then"], check["forget_accuracy_now"]
    return (f"       re-check of entry {check['entry']}: forget acc {then:.3f} then, {now:.3f} "
            f"now; {check['forgotten_then']} row(s) forgotten then; {state}{missing}")


def ledger_section(report: dict) -> str:
    """The report's ledger section (``assd unlearn``): re-checks, drift, what is due."""
    part = report.get("ledger")
    if not part:
        return ""
    checks = part.get("reverified") or []
    lines = ["", "## Ledger", "",
             f"- entry {part['index']} of {part['entries']}; {part['excluded']} row(s) that "
             "earlier requests forgot were left out of every set"]  # fmt: skip
    if checks:
        held = sum(c["holds"] for c in checks)
        back = sum(c["came_back"] for c in checks)
        lines.append(f"- re-checked {len(checks)} earlier request(s) on the new model: {held} "
                     f"hold, {back} row(s) came back")  # fmt: skip
    if report.get("reforgotten"):
        lines.append(f"- forgot again {len(report['reforgotten'])} row(s) that had come back")
    drift = ", ".join(f"{k} {v:+.2f} points" for k, v in (part.get("drift") or {}).items())
    lines.append(f"- drift since the last full training: {drift} (budget "
                 f"{part.get('drift_budget')} points)")  # fmt: skip
    if part.get("drift_note"):
        lines.append(f"- {part['drift_note']}")
    if part.get("retrain_due"):
        lines.append("- RETRAIN DUE: applied past the drift budget; `assd retrain --model M "
                     "--data T --out NEW` starts a fresh baseline")  # fmt: skip
    return "\n".join(lines) + "\n"
