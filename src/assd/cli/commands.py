"""Imports every command module, so each adds its commands to the ``assd`` group."""

# One line per command module (each registers itself on import).
from . import experiment_errors as _experiment_errors  # noqa: F401  (assd experiment errors)
from . import experiment_forget as _experiment_forget  # noqa: F401  (assd experiment forget)
from . import experiment_matrix as _experiment_matrix  # noqa: F401  (assd experiment matrix)
from . import find_errors as _find_errors  # noqa: F401  (assd find-errors)
from . import tables as _tables  # noqa: F401  (assd train / unlearn / evaluate / data)
