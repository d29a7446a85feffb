"""Checks of a table task's choices (columns, roles) and of a stored task.json's values."""

from __future__ import annotations

__all__ = ["check_chosen_columns", "check_target_role", "check_task_values"]


def check_chosen_columns(frame, target, id_column, features, categorical) -> None:
    """Refuse misspelt feature names and the target or the id column used as a feature."""
    columns = [str(c) for c in frame.columns]
    for flag, names in (("--features", features), ("--categorical", categorical)):
        unknown = [n for n in names or [] if n not in frame.columns]
        if unknown:
            import difflib

            hints = {n: difflib.get_close_matches(str(n), columns, n=1) for n in unknown}
            near = "; ".join(f"{n!r}: did you mean {h[0]!r}?" for n, h in hints.items() if h)
            raise ValueError(
                f"{flag} names column(s) {unknown} that the table does not have"
                f"{' (' + near + ')' if near else ''}; its columns are {columns[:30]}."
            )
    if categorical and features:
        outside = [c for c in categorical if c not in features]
        if outside:
            raise ValueError(f"--categorical {outside} are not among --features; add them there.")
    for role, name in (("target", target), ("id column", id_column)):
        if name is not None and name in (features or []):
            raise ValueError(
                f"--features includes the {role} {name!r}; a model that sees its {role} "
                "learns nothing useful (or memorises rows). Remove it from --features."
            )


def check_target_role(target: str, id_column: str | None, split: str) -> None:
    """Refuse a target that is also the id column or the time-split column."""
    roles = (("id column (--id-column)", id_column),
             ("time-split column (--split)", split[5:] if split.startswith("time:") else None))
    for role, name in roles:  # fmt: skip
        if name is not None and name == target:
            raise ValueError(
                f"the target {target!r} is also the {role}; a label that names each row (or "
                "its time) leaves nothing to learn. Choose another --target, or another "
                f"{role.split('(')[1].rstrip(')')}."
            )


def check_task_values(state: dict) -> None:
    """Values a task.json field may hold beyond its type (see :meth:`TableTask.from_dict`)."""
    names = state.get("class_names", [])
    if not all(isinstance(c, str) for c in names) or len(set(names)) != len(names):
        raise ValueError("field 'class_names' must be a list of distinct strings")
    if len(names) < 2:
        raise ValueError("field 'class_names' must name at least 2 classes")
    share = state.get("test_share", 0.2)
    if not 0.0 <= share < 1.0:
        raise ValueError(f"field 'test_share' is {share!r}, not a share in [0, 1)")
    split = state.get("split", "none")
    if split not in ("none", "random") and not (split.startswith("time:") and len(split) > 5):
        raise ValueError(f"field 'split' is {split!r}; it must be none, random or time:COLUMN")
    test_ids = state.get("test_ids") or []
    if not all(isinstance(i, str) for i in test_ids):
        raise ValueError("field 'test_ids' must be a list of strings")
    time_column = split[5:] if split.startswith("time:") else None
    if state.get("target") in (state.get("id_column"), time_column):
        raise ValueError("field 'target' is also the id or time-split column")
