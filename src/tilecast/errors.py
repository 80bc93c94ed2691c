"""The exception and warning hierarchy.

One root, ``TilecastError``; every subclass also inherits the builtin it refines so callers
that catch ``ValueError`` or ``OSError`` keep working. Messages say what was expected and
what arrived.
"""


class TilecastError(Exception):
    """Root of every error tilecast raises on purpose."""


class ContractError(TilecastError, ValueError):
    """A model contract (or a config) is malformed or inconsistent."""


class BundleError(TilecastError, ValueError):
    """A model bundle cannot be loaded as declared."""


class BundleIntegrityError(BundleError):
    """A bundle file differs from what the manifest or contract records (hash, size, listing)."""


class GoldenMismatchError(BundleError):
    """The loaded model does not reproduce its golden outputs within the stated tolerance."""


class InputError(TilecastError, ValueError):
    """An input array, image or record does not satisfy the contract."""


class SentinelError(InputError):
    """A sentinel or non-finite value reached a place that must only see valid data."""


class UnknownNameError(TilecastError, KeyError):
    """A name looked up in a registry (op, architecture, TTA view, profile) is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known) or '(none)'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class StorageError(TilecastError, OSError):
    """Reading or writing a URI failed."""


class TilecastWarning(UserWarning):
    """Recoverable problems: logged, counted, and the run goes on."""


class InputDriftError(InputError):
    """The inputs are unlike what the model was trained on, and the run was told to fail."""
