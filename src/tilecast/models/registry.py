"""Named model architectures: a registry of constructors with one calling convention.

A bundle records an architecture as ``{"name": ..., "params": {...}}``; :func:`build_model`
turns that record back into an ``nn.Module``. Constructors take keyword-only parameters, so the
registry can check a params mapping against the constructor's signature before calling it and
name the offending parameter instead of surfacing a bare ``TypeError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from tilecast.errors import ContractError, UnknownNameError

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register(name: str) -> Callable[[F], F]:
    """Register a constructor (class or factory) under ``name``; a name can be taken once."""

    def decorate(factory: F) -> F:
        if name in ARCHITECTURES:
            raise ContractError(
                f"architecture name {name!r} must be unique; it is already registered to "
                f"{ARCHITECTURES[name]!r}"
            )
        ARCHITECTURES[name] = factory
        return factory

    return decorate


def architecture_names() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(ARCHITECTURES)


def get_architecture(name: str) -> Callable[..., nn.Module]:
    """The constructor registered under ``name``."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnknownNameError("architecture", name, list(ARCHITECTURES)) from None


def accepted_params(name: str) -> list[str]:
    """The parameter names the constructor registered under ``name`` accepts."""
    signature = inspect.signature(get_architecture(name))
    return [p.name for p in signature.parameters.values() if p.name != "self"]


def build_model(name: str, params: Mapping[str, Any]) -> nn.Module:
    """Build the architecture registered under ``name`` from a params mapping.

    Raises :class:`UnknownNameError` for an unregistered name and :class:`ContractError` naming
    the architecture and the parameter for an unknown or invalid parameter.
    """
    factory = get_architecture(name)
    if not isinstance(params, Mapping):
        raise ContractError(
            f"architecture {name!r}: params must be a mapping, got {type(params).__name__}"
        )
    known = accepted_params(name)
    for key in params:
        if key not in known:
            raise ContractError(
                f"architecture {name!r} has no parameter {key!r}; accepted: {', '.join(known)}"
            )
    try:
        return factory(**dict(params))
    except ContractError as exc:
        raise ContractError(f"architecture {name!r}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ContractError(f"architecture {name!r}: invalid params ({exc})") from exc
