"""Objects named by import path (``package.module:function``): factories and callable options.

One loader for everything a user names by import path: ``--model-factory``,
``--data-factory`` and the callable method options (``--option loss_fn=mod:fn``).
Whatever goes wrong inside a factory (it cannot be imported, is not callable,
needs arguments, raises, or calls ``sys.exit``) is reported as that factory's
failure, by name, as a :class:`FactoryError` (a ``ValueError``: exit code 2 in the CLI).

Example:
    >>> import_factory("torch.nn:Linear").__name__
    'Linear'
    >>> call_factory("builtins:dict", what="--data-factory")
    {}
    >>> call_factory("builtins:len", what="--model-factory")
    Traceback (most recent call last):
    ...
    assd.factories.FactoryError: --model-factory builtins:len needs arguments...
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

__all__ = ["FactoryError", "call_factory", "import_callable", "import_factory"]


class FactoryError(ValueError):
    """A factory or callable named by import path could not be loaded or run."""


def import_factory(path: str, *, what: str = "") -> Any:
    """The object at ``"package.module:name"`` (the module must be importable)."""
    label = _label(what, path)
    module_name, _, name = str(path).partition(":")
    if not module_name or not name:
        raise FactoryError(
            f"{label!s}: not an import path; write package.module:function (the module "
            "must be importable: installed, or its folder on PYTHONPATH)."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise FactoryError(
            f"{label}: cannot import {module_name!r} ({error}); install it or add its folder "
            "to PYTHONPATH."
        ) from error
    except (Exception, SystemExit) as error:  # the module's own code failed while importing
        raise FactoryError(
            f"{label}: importing {module_name!r} failed with {_describe(error)}; fix that "
            f"module (`python -c 'import {module_name}'` shows the traceback)."
        ) from None
    target = module
    for part in name.split("."):
        if not hasattr(target, part):
            raise FactoryError(f"{label}: {module_name} has no {name!r}; check the name after "
                               "the colon.")  # fmt: skip
        target = getattr(target, part)
    return target


def import_callable(path: str, *, what: str) -> Any:
    """The callable at ``path`` (a callable option such as ``loss_fn``); not called."""
    target = import_factory(path, what=what)
    if not callable(target):
        raise FactoryError(
            f"{_label(what, path)} is a {type(target).__name__}, not a function; name a "
            "function."
        )
    return target


def call_factory(path: str, *, what: str) -> Any:
    """Import the function at ``path`` and call it with no arguments; its result.

    Raises:
        FactoryError: naming ``what`` (e.g. ``--model-factory``) and ``path`` when
            the function cannot be imported, is not callable, needs arguments,
            raises, or calls ``sys.exit``.
    """
    target = import_callable(path, what=what)
    try:
        inspect.signature(target).bind()
    except TypeError:
        raise FactoryError(
            f"{what} {path} needs arguments; name a function that takes none and returns "
            "what it builds."
        ) from None
    except ValueError:  # no signature to read (some builtins): just call it
        pass
    try:
        return target()
    except (Exception, SystemExit) as error:
        raise FactoryError(
            f"{what} {path} failed: it raised {_describe(error)}; fix the function (call it "
            "in Python to see the traceback)."
        ) from None


def _label(what: str, path: str) -> str:
    """``--model-factory pkg:make`` or, for an option, ``--option loss_fn=pkg:fn``."""
    return f"{what}{path}" if what.endswith("=") else f"{what} {path}".strip()


def _describe(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"SystemExit (it called sys.exit({error.code!r}))"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
