"""Errors of the region merge."""

from __future__ import annotations

from tilecast.errors import StorageError, TilecastError

__all__ = ["MergeInputError", "MissingTilesError"]


class MergeInputError(TilecastError, ValueError):
    """The run logs cannot be merged as they are: they disagree (threshold, bundle), list a
    tile twice with different records, or name no tile to merge."""


class MissingTilesError(StorageError):
    """Tiles the run logs record as done have no file under ``tiles/``."""

    def __init__(self, missing: list[str], *, tiles_dir: str) -> None:
        self.missing = sorted(missing)
        shown = ", ".join(self.missing[:20])
        more = f" and {len(self.missing) - 20} more" if len(self.missing) > 20 else ""
        super().__init__(
            f"{len(self.missing)} tile(s) recorded as done in the run log have no file in "
            f"{tiles_dir}: {shown}{more}"
        )
