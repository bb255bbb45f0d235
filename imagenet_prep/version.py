"""The package version, in a module of its own: every layer may name it without importing the package root
(whose lazy aliases reach every layer)."""

__version__ = "0.1.0"
