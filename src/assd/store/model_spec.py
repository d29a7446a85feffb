"""What a model folder's ``model.json`` must hold, checked before anything is built from it.

A hand-edited or damaged ``model.json`` is refused naming the file and the
field: an architecture that is not a name, keyword arguments that are not a
mapping of plain values or hold a size no model has (``n_features`` of a
trillion would allocate until memory runs out), ``extra`` that is not a
mapping. Where the folder's marker keeps a checksum of the file
(:func:`assd.store.manifest.check_json`), any edit is refused, naming the
fields that changed.

Example:
    >>> check_spec({"architecture": "mlp", "kwargs": {"n_features": -4}}, "m/model.json")
    Traceback (most recent call last):
    ...
    ValueError: m/model.json field 'kwargs.n_features' is -4; ...
"""

from __future__ import annotations

__all__ = ["MAX_SIZE", "check_spec"]

MAX_SIZE = 1 << 24  # the largest whole-number size a model keyword may hold (16,777,216)


def check_spec(spec, where) -> dict:
    """Return ``spec`` if it is a well-formed ``model.json``; else ValueError naming the field."""
    if not isinstance(spec, dict):
        _refuse(where, "(the whole file)", spec, "a JSON object")
    if not isinstance(spec.get("architecture"), str):
        _refuse(where, "architecture", spec.get("architecture"), "a model name")
    kwargs = spec.get("kwargs")
    if not isinstance(kwargs, dict):
        _refuse(where, "kwargs", kwargs, "a mapping of keyword arguments")
    for key, value in kwargs.items():
        _check_value(where, f"kwargs.{key}", value)
    if not isinstance(spec.get("extra", {}), dict):
        _refuse(where, "extra", spec.get("extra"), "a mapping")
    if not isinstance(spec.get("assd_version", ""), str):
        _refuse(where, "assd_version", spec.get("assd_version"), "a version string")
    return spec


def _check_value(where, name: str, value) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not 1 <= value <= MAX_SIZE:
            _refuse(where, name, value, f"a size between 1 and {MAX_SIZE:,}")
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            _refuse(where, name, value, "a finite number")
        return
    if isinstance(value, list):
        for item in value:
            _check_value(where, name, item)
        return
    _refuse(where, name, value, "a plain value (number, text, true/false or a list)")


def _refuse(where, name: str, value, wanted: str) -> None:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ValueError(
        f"{where} field {name!r} is {shown}; it must be {wanted}. The file is damaged or was "
        "edited; restore it as assd wrote it, or re-create the model folder."
    )
