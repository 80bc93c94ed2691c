"""Optional dependencies fail with a sentence, not a traceback.

Each extra of ``pyproject.toml`` is imported lazily through :func:`import_optional`, which
names the package, what needs it and how to install it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tilecast.errors import TilecastError


class MissingExtraError(TilecastError, ImportError):
    """An optional dependency is not installed."""


def import_optional(module: str, *, extra: str, purpose: str) -> ModuleType:
    """``import module``, or :class:`MissingExtraError` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{purpose} needs {module.split('.')[0]}, which is not installed "
            f"({exc}): pip install 'tilecast[{extra}]'"
        ) from exc
