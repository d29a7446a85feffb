"""Method options written as text, parsed and checked in one place.

Every entry point reads method options with these functions: ``assd unlearn
--option KEY=VALUE`` (table and own-model paths), the method specs
``NAME:key=value,...`` of ``assd experiment``, and the table defaults. Values
are read as JSON where they parse (``5``, ``0.1``, ``true``, ``null``), else as
text. Each key is checked against the method's signature: unknown keys are
refused with the list of valid ones, repeats are refused, values of the wrong
type are refused naming the option, and the callable options (``loss_fn``,
``batch_fn``, ``output_fn``) are resolved from ``package.module:function``, as
``--model-factory`` is (:mod:`assd.factories`).

Example:
    >>> method_options("ssd", ["alpha=5", "reference=retain"])
    {'alpha': 5, 'reference': 'retain'}
    >>> parse_spec("assd:reference=full,train_mode=true")
    ('assd', {'reference': 'full', 'train_mode': True})
    >>> method_options("ssd", ["alpah=5"])
    Traceback (most recent call last):
    ...
    ValueError: --option alpah: method 'ssd' has no such option; it takes alpha, ...
"""

from __future__ import annotations

import inspect
import json
import math
import re

from ..factories import import_callable
from .registry import _METHODS, available_methods

__all__ = [
    "CALLABLE_OPTIONS",
    "check_options",
    "check_spec",
    "check_value",
    "key_values",
    "keyword_parameters",
    "merge_flags",
    "method_options",
    "parse_spec",
    "split_methods",
]

CALLABLE_OPTIONS = ("loss_fn", "batch_fn", "output_fn")  # given as package.module:function
_INTERNAL = {"progress"}  # options only Python callers can pass


def key_values(items, *, flag: str = "--option") -> dict:
    """``["key=value", ...]`` -> dict; values read as JSON where they parse (5, 0.1, true).

    Raises:
        ValueError: for an item without ``=`` or a key, or a key given twice.
    """
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{flag} {item!r} must look like key=value, e.g. alpha=10.")
        if key in out:
            raise ValueError(f"{flag} {key} is given twice; give each key once.")
        try:
            out[key] = json.loads(value.strip())
        except json.JSONDecodeError:
            out[key] = value.strip()
    return out


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"name:key=value,..."`` -> ``(name, options)``, parsed as :func:`key_values` does,
    callable options imported (the method and its options are checked by :func:`check_spec`)."""
    name, _, rest = str(spec).partition(":")
    items = [part for part in rest.split(",") if part.strip()]
    options = key_values(items, flag=f"method {spec!r}:")
    flag = f"method {spec!r}: option"
    options |= {k: _callable(k, v, flag) for k, v in options.items() if k in CALLABLE_OPTIONS}
    return name.strip().lower(), options


def method_options(method: str, items, *, flag: str = "--option") -> dict:
    """Parse ``--option`` items and check them against ``method``: :func:`check_options`."""
    return check_options(method, key_values(items, flag=flag), flag=flag)


def check_spec(spec: str, *, own: tuple[str, ...] = (), prefix: str = "",
               extra: tuple[str, ...] = ()) -> tuple[str, dict]:  # fmt: skip
    """Parse a method spec and check its options against the method, as ``assd experiment``
    reads ``--methods``; ``own`` names that are not methods (``mistake``, ``original``,
    without options), a ``prefix`` (``found:``) and ``extra`` keys the experiment itself
    reads (not the method: ``reason``) are let through.

    Example:
        >>> check_spec("found:ssd:alpha=5", own=("mistake",), prefix="found:")
        ('found:ssd', {'alpha': 5})
    """
    text = str(spec).strip()
    lead = prefix if prefix and text.lower().startswith(prefix) else ""
    name, options = parse_spec(text[len(lead):])
    if name in own and not lead:
        if options:
            raise ValueError(f"method {spec!r}: {name} takes no options.")
    else:
        mine = {k: v for k, v in options.items() if k not in extra}
        check_options(name, mine, flag=f"method {spec!r}: option")
    return lead + name, options


def check_options(method: str, options: dict, *, flag: str = "--option") -> dict:
    """``options`` checked against what ``method`` takes, callables resolved; a new dict.

    Raises:
        ValueError: for an unknown method, an unknown key (listing the valid
            ones), a value of the wrong type (naming the option), a callable
            option that cannot be imported, or a value the method itself refuses.
    """
    name = str(method).strip().lower()
    if name not in _METHODS:
        raise ValueError(
            f"unknown method {method!r}; known methods: {', '.join(available_methods())}."
        )
    cls = _METHODS[name]
    params = keyword_parameters(cls)
    out = dict(options)
    for key, value in options.items():
        if key not in params and key in keyword_parameters(cls, probe=False):
            _construct(cls, {key: value}, flag)  # inherited but refused: the method says why
        if key not in params:
            raise ValueError(
                f"{flag} {key}: method {method!r} has no such option; it takes "
                f"{', '.join(sorted(params)) or 'none'}."
            )
        if key in CALLABLE_OPTIONS:
            out[key] = _callable(key, value, flag)
            continue
        check_value(key, value, params[key], method, flag=flag)
    _construct(cls, out, flag)  # the method's own checks (e.g. ASSD refuses alpha)
    return out


def merge_flags(options: dict, flags: dict, *, flag: str = "--option") -> dict:
    """``options`` with the values of dedicated flags (``--estimator`` for ``estimator``);
    a flag left out (None) changes nothing, and a flag that contradicts an option is refused.

    Example:
        >>> merge_flags({"alpha": 5}, {"estimator": "batch", "reference": None})
        {'alpha': 5, 'estimator': 'batch'}
    """
    out = dict(options)
    for key, value in flags.items():
        if value is None:
            continue
        if key in out and out[key] != value:
            raise ValueError(
                f"{flag} {key}={json.dumps(out[key], default=str)} contradicts "
                f"--{key.replace('_', '-')} {value}; give one of them."
            )
        out[key] = value
    return out


def _callable(key: str, value, flag: str):
    if isinstance(value, str):
        return import_callable(value, what=f"{flag} {key}=")
    if value is None or callable(value):
        return value
    raise ValueError(
        f"{flag} {key}={json.dumps(value, default=str)}: {key} is a function; write "
        "package.module:function."
    )


def _construct(cls: type, options: dict, flag: str) -> None:
    try:
        cls(**options)  # ValueError from the method's own checks passes through as it is
    except TypeError as error:
        raise ValueError(f"{flag}: {error}; check the option names and values.") from None


def keyword_parameters(cls, *, probe: bool = True) -> dict[str, inspect.Parameter]:
    """Keyword options of ``cls``, following ``**options`` passed on to its base classes
    (with ``probe``, only those it accepts: ASSD inherits SSD's alpha but refuses it)."""
    found: dict[str, inspect.Parameter] = {}
    for klass in getattr(cls, "__mro__", (cls,)):
        init = vars(klass).get("__init__") if isinstance(klass, type) else klass
        if init is None:
            continue
        signature = inspect.signature(init)
        for name, param in signature.parameters.items():
            if name != "self" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                found.setdefault(name, param)
        if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    keep = {n: p for n, p in found.items() if n not in _INTERNAL}
    if not probe or not isinstance(cls, type):
        return keep
    own = inspect.signature(cls.__init__).parameters
    return {n: p for n, p in keep.items() if n in own or _accepts(cls, n, p.default)}


def _accepts(cls: type, name: str, default) -> bool:
    """Whether ``cls`` takes an option it inherits (ASSD refuses SSD's alpha, for one)."""
    try:
        cls(**{name: default})
    except (TypeError, ValueError):
        return False
    return True


def check_value(key: str, value, param: inspect.Parameter, owner: str, *,
                flag: str = "--option") -> None:  # fmt: skip
    """Refuse ``value`` if its type is not one ``param`` accepts (by annotation or default)."""
    kinds = _kinds(param)
    ok = (
        (value is None and "None" in kinds)
        or (isinstance(value, bool) and "bool" in kinds)
        or (not isinstance(value, bool) and isinstance(value, int) and kinds & {"int", "float"})
        or (isinstance(value, float) and "float" in kinds and math.isfinite(value))
        or (isinstance(value, str) and "str" in kinds)
        or not kinds
    )  # fmt: skip
    if not ok:
        raise ValueError(
            f"{flag} {key}={json.dumps(value)}: {owner!r} expects "
            f"{' or '.join(sorted(kinds))} for {key} (default {param.default!r})."
        )


def _kinds(param: inspect.Parameter) -> set[str]:
    """The simple types an option accepts, from its annotation (or its default)."""
    text = str(param.annotation) if param.annotation is not inspect.Parameter.empty else ""
    kinds = {k for k in ("bool", "int", "float", "str", "None") if re.search(rf"\b{k}\b", text)}
    if not kinds and param.default is not inspect.Parameter.empty:
        kinds = {type(param.default).__name__}
    return kinds & {"bool", "int", "float", "str", "None"} if kinds else set()


def split_methods(text: str) -> list[str]:
    """Split a method list (commas, semicolons or spaces); ``key=value`` pieces that follow
    a ``name:key=value`` spec stay with it."""
    specs: list[str] = []
    for piece in ",".join(text.replace(";", " ").split()).split(","):
        if not piece:
            continue
        if "=" in piece and ":" not in piece and specs:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs
