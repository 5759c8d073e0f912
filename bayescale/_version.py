"""The package version (one place: the root and the results files read it)."""

__version__ = "0.2.0"
