"""Imports every command module, so each adds its commands to the ``assd`` group."""

# One line per command module (each registers itself on import).
