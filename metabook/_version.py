"""The installed version of metabook (``0.0.0`` in a source tree that was not installed)."""

from importlib.metadata import PackageNotFoundError, version

__all__: list[str] = []

try:
    __version__ = version("metabook-ml")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
