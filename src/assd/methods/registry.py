"""A small registry: method names to classes."""

from __future__ import annotations

from typing import Any

__all__ = ["available_methods", "get_method", "register"]

_METHODS: dict[str, type] = {}


def register(name: str):
    """Class decorator that makes a method available under ``name``.

    Raises:
        ValueError: if the name is already taken.
    """

    def decorate(cls: type) -> type:
        if name in _METHODS:
            raise ValueError(
                f"method name {name!r} is already registered by {_METHODS[name].__name__}; "
                "choose another name."
            )
        _METHODS[name] = cls
        cls.name = name
        return cls

    return decorate


def get_method(name: str, **options: Any):
    """Create the method registered as ``name`` with keyword ``options``.

    Example:
        >>> get_method("ssd", alpha=5.0).alpha
        5.0
    """
    key = name.strip().lower()
    if key not in _METHODS:
        raise ValueError(
            f"unknown method {name!r}; known methods: {', '.join(available_methods())}."
        )
    return _METHODS[key](**options)


def available_methods() -> list[str]:
    """Sorted names of all registered methods."""
    return sorted(_METHODS)
