"""Imports every command module, so each adds its commands to the ``assd`` group."""

# One line per command module (each registers itself on import).
from . import experiment_errors as _experiment_errors  # noqa: F401  (assd experiment errors)
from . import experiment_forget as _experiment_forget  # noqa: F401  (assd experiment forget)
from . import find_errors as _find_errors  # noqa: F401  (assd find-errors)
from . import ledger as _ledger  # noqa: F401  (assd history / retrain; ledger options of unlearn)
from . import tables as _tables  # noqa: F401  (assd train / unlearn / evaluate / data)
