"""The package's version as installed: pyproject.toml is its one source."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("groktransfer")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
