"""The package version, in a leaf module: anything may import it without importing the API."""

__version__ = "0.1.0"
