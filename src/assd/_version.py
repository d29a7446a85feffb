"""The package version, in a leaf module: low layers read it without importing every method."""

__version__ = "0.1.0"
