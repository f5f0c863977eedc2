"""rnnkit's version, in a module of its own that imports nothing: the package root re-exports
it, and the checkpoint writer records it in every file without importing the package root
(which imports the checkpoint writer)."""

__version__ = "0.1.0"
