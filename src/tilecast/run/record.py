"""The record of committed work: which tiles are done (with their file hash) or skipped (why).

A tile is recorded only after its file is in place, so the record never lists a tile whose
file is missing; a crash between the two makes the restart recompute the tile, which writes
identical bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class TileRecord:
    status: Literal["done", "skipped"]
    sha256: str | None = None
    reason: str | None = None
    detected: bool = False  # any valid pixel at or above the threshold
    region: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status}
        if self.sha256:
            data["sha256"] = self.sha256
        if self.status == "done":
            data["detected"] = self.detected
        if self.region:
            data["region"] = self.region
        if self.reason:
            data["reason"] = self.reason
        return data


class CompletedTiles:
    """Mutable map tile_id -> TileRecord, serialised sorted so checkpoints are deterministic."""

    def __init__(self, entries: Mapping[str, TileRecord] | None = None) -> None:
        self._entries: dict[str, TileRecord] = dict(entries or {})

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tile_id: object) -> bool:
        return tile_id in self._entries

    def get(self, tile_id: str) -> TileRecord | None:
        return self._entries.get(tile_id)

    def reason_for(self, tile_id: str) -> str | None:
        entry = self._entries.get(tile_id)
        return entry.reason if entry else None

    def mark_done(self, tile_id: str, *, sha256: str, detected: bool, region: str | None) -> None:
        self._entries[tile_id] = TileRecord("done", sha256=sha256, detected=detected, region=region)

    def mark_skipped(self, tile_id: str, *, reason: str, region: str | None) -> None:
        self._entries[tile_id] = TileRecord("skipped", reason=reason, region=region)

    def forget(self, tile_ids: Iterable[str]) -> None:
        for tile_id in tile_ids:
            self._entries.pop(tile_id, None)

    def ids(self, status: str | None = None) -> list[str]:
        return sorted(k for k, v in self._entries.items() if status is None or v.status == status)

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {k: self._entries[k].to_json() for k in sorted(self._entries)}

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, Any]]) -> CompletedTiles:
        return cls(
            {
                k: TileRecord(
                    status=v["status"],
                    sha256=v.get("sha256"),
                    reason=v.get("reason"),
                    detected=bool(v.get("detected", False)),
                    region=v.get("region"),
                )
                for k, v in data.items()
            }
        )
