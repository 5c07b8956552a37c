"""The package version, in a module of its own so that parts of the package can read it
without importing the package's public face (which imports the engine)."""

__version__ = "0.1.0"
