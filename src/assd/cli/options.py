"""Checking command-line options up front, with one-paragraph errors.

``--option KEY=VALUE`` (method options), ``--device`` and ``--model-option``
are checked before any data is read, so a typo fails in a second with a
message naming the known keys, not minutes later with a raw ``TypeError``.

Example:
    >>> method_options("ssd", ["alpha=5", "reference=retain"])
    {'alpha': 5, 'reference': 'retain'}
    >>> method_options("ssd", ["alpah=5"])
    Traceback (most recent call last):
    ...
    ValueError: --option alpah: method 'ssd' has no such option...
"""

from __future__ import annotations

import inspect
import json
import math
import re

__all__ = ["check_device", "key_values", "method_options", "model_options"]

_INTERNAL = {"loss_fn", "batch_fn", "output_fn", "progress"}  # options only Python callers can pass
_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


def key_values(items, *, flag: str = "--option") -> dict:
    """``["key=value", ...]`` -> dict; values read as JSON where they parse (5, 0.1, true)."""
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{flag} {item!r} must look like KEY=VALUE, e.g. {flag} alpha=10.")
        if key in out:
            raise ValueError(f"{flag} {key} is given twice; give each key once.")
        try:
            out[key] = json.loads(value.strip())
        except json.JSONDecodeError:
            out[key] = value.strip()
    return out


def method_options(method: str, items) -> dict:
    """Parse and check ``--option`` items against the options ``method`` takes.

    Raises:
        ValueError: for an unknown method, an unknown key, or a value of the
            wrong kind (text for a number, a non-finite number, ...).
    """
    from ..methods.registry import _METHODS, available_methods

    options = key_values(items)
    name = method.strip().lower()
    if name not in _METHODS:
        raise ValueError(
            f"unknown method {method!r}; known methods: {', '.join(available_methods())}."
        )
    params = _parameters(_METHODS[name])
    for key, value in options.items():
        if key not in params and key in _parameters(_METHODS[name], probe=False):
            _METHODS[name](**{key: value})  # inherited but refused: the method says why
        if key not in params:
            raise ValueError(
                f"--option {key}: method {method!r} has no such option; it takes "
                f"{', '.join(sorted(params)) or 'none'}."
            )
        _check_value(key, value, params[key], method)
    try:
        _METHODS[name](**options)  # the method's own checks (e.g. ASSD refuses alpha)
    except TypeError as error:
        raise ValueError(f"--option: {error}; check the option names and values.") from None
    return options


def model_options(architecture: str, items) -> dict:
    """Parse and check ``--model-option`` items against the keywords of ``architecture``."""
    from ..models import ARCHITECTURES

    options = key_values(items, flag="--model-option")
    if architecture not in ARCHITECTURES:
        return options  # build_model gives the error naming the known models
    params = _parameters(ARCHITECTURES[architecture][0])
    for key, value in options.items():
        if key not in params:
            raise ValueError(
                f"--model-option {key}: model {architecture!r} has no such keyword; it takes "
                f"{', '.join(sorted(params)) or 'none'}."
            )
        _check_value(key, value, params[key], architecture, flag="--model-option")
    return options


def _parameters(cls: type, *, probe: bool = True) -> dict[str, inspect.Parameter]:
    """Keyword options of ``cls``, following ``**options`` passed on to its base classes
    (with ``probe``, only those it accepts: ASSD inherits SSD's alpha but refuses it)."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__)
        for name, param in signature.parameters.items():
            if name != "self" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                found.setdefault(name, param)
        if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    own = inspect.signature(cls.__init__).parameters
    keep = {n: p for n, p in found.items() if n not in _INTERNAL}
    if not probe:
        return keep
    return {n: p for n, p in keep.items() if n in own or _accepts(cls, n, p.default)}


def _accepts(cls: type, name: str, default) -> bool:
    """Whether ``cls`` takes an option it inherits (ASSD refuses SSD's alpha, for one)."""
    try:
        cls(**{name: default})
    except (TypeError, ValueError):
        return False
    return True


def _check_value(
    key: str, value, param: inspect.Parameter, method: str, *, flag: str = "--option"
) -> None:
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
            f"{flag} {key}={json.dumps(value)}: {method!r} expects "
            f"{' or '.join(sorted(kinds))} for {key} (default {param.default!r})."
        )


def _kinds(param: inspect.Parameter) -> set[str]:
    """The simple types an option accepts, from its annotation (or its default)."""
    text = str(param.annotation) if param.annotation is not inspect.Parameter.empty else ""
    kinds = {k for k in ("bool", "int", "float", "str", "None") if re.search(rf"\b{k}\b", text)}
    if not kinds and param.default is not inspect.Parameter.empty:
        kinds = {type(param.default).__name__}
    return kinds & {"bool", "int", "float", "str", "None"} if kinds else set()


def check_device(text: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``; a clear error otherwise."""
    value = str(text).strip().lower()
    if not _DEVICE.match(value):
        raise ValueError(
            f"--device {text!r} is not a device; use cpu, cuda, cuda:N (a GPU number), mps "
            "or auto."
        )
    if value.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {text}: no CUDA GPU is available here; use cpu or auto.")
        index = int(value.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {text}: there are only {torch.cuda.device_count()} GPU(s) "
                "(numbered from 0)."
            )
    return value
