"""tilecast: run trained PyTorch models over large, messy inputs without train/serve skew."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tilecast")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
