"""The tile list: the CSV that says which tiles a shard of the thaw-slump job processes.

Format (UTF-8 text; a leading byte-order mark is ignored)::

    # comment lines start with '#'; blank lines are ignored
    tile_id,minx,miny,maxx,maxy,region
    r0000012_c0000034,-2379648.0,-311520.0,-2378112.0,-309984.0,alaska

- A header line is required. Columns are matched by name (any order): ``tile_id``, ``minx``,
  ``miny``, ``maxx``, ``maxy`` are required, ``region`` is optional; any other column is
  rejected by name. Fields are stripped of surrounding spaces.
- Coordinates are finite numbers in the basemap CRS with ``minx < maxx`` and ``miny < maxy``.
- ``tile_id`` is non-empty, unique, and a safe file-name part (letters, digits, ``. _ -``;
  see ``tilecast.grid.NAME_PATTERN``); so is ``region``, whose empty cell means "no region".
- The list is processed as given: :func:`parse_tile_list` keeps the order of the file.

Parsing and formatting are pure text functions; the caller reads and writes the file (through
``tilecast.io.storage``). Errors are :class:`~tilecast.grid.TileListError` naming the source
and the 1-based line number.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence

from tilecast.grid import NAME_PATTERN, Tile, TileListError

__all__ = ["COLUMNS", "OPTIONAL_COLUMNS", "TileListError", "format_tile_list", "parse_tile_list"]

#: Required columns, in the order :func:`format_tile_list` writes them.
COLUMNS: tuple[str, ...] = ("tile_id", "minx", "miny", "maxx", "maxy")
#: Optional columns.
OPTIONAL_COLUMNS: tuple[str, ...] = ("region",)

_HEADER_HINT = ",".join(COLUMNS) + "[,region]"
_NAME_RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit"


def _split(line: str) -> list[str] | None:
    """The stripped fields of one CSV line, or ``None`` when it is malformed."""
    try:
        rows = list(csv.reader([line], strict=True, skipinitialspace=True))
    except csv.Error:
        return None
    if len(rows) != 1:
        return None
    return [field.strip() for field in rows[0]]


def _header(fields: list[str] | None, where: str) -> list[str]:
    if fields is None:
        raise TileListError(f"{where}: malformed header line; expected {_HEADER_HINT}")
    repeated = sorted({f for f in fields if fields.count(f) > 1})
    missing = [c for c in COLUMNS if c not in fields]
    extra = [f for f in fields if f not in COLUMNS + OPTIONAL_COLUMNS]
    problems = []
    if repeated:
        problems.append(f"repeated columns {repeated}")
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unknown columns {extra}")
    if problems:
        raise TileListError(
            f"{where}: bad header {','.join(fields)!r}: {'; '.join(problems)}; "
            f"expected the columns {_HEADER_HINT}"
        )
    return fields


def _number(where: str, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TileListError(f"{where}: {name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TileListError(f"{where}: {name} {text!r} is not finite")
    return value


def _tile(where: str, record: dict[str, str]) -> Tile:
    tile_id = record["tile_id"]
    if not tile_id:
        raise TileListError(f"{where}: empty tile_id")
    if not NAME_PATTERN.fullmatch(tile_id):
        raise TileListError(f"{where}: tile_id {tile_id!r} is not allowed: {_NAME_RULE}")
    minx, miny, maxx, maxy = (_number(where, c, record[c]) for c in COLUMNS[1:])
    if minx >= maxx:
        raise TileListError(f"{where}: tile {tile_id}: minx {minx!r} >= maxx {maxx!r}")
    if miny >= maxy:
        raise TileListError(f"{where}: tile {tile_id}: miny {miny!r} >= maxy {maxy!r}")
    region = record.get("region") or None
    if region is not None and not NAME_PATTERN.fullmatch(region):
        raise TileListError(
            f"{where}: tile {tile_id}: region {region!r} is not allowed: {_NAME_RULE}"
        )
    return Tile(tile_id, minx, miny, maxx, maxy, region)


def parse_tile_list(text: str, *, source: str = "<tile list>") -> list[Tile]:
    """The tiles of a tile-list CSV, in the order of the text.

    Raises :class:`TileListError` naming ``source`` and the 1-based line for: no header, a
    bad header (missing, unknown or repeated columns, each named), a malformed line, a wrong
    number of fields, an empty or unsafe ``tile_id`` or ``region``, a non-numeric or
    non-finite coordinate, ``minx >= maxx`` or ``miny >= maxy``, a repeated ``tile_id``
    (naming both lines), and a list with no tiles.
    """
    columns: list[str] | None = None
    tiles: list[Tile] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{source} line {number}"
        fields = _split(line)
        if columns is None:
            columns = _header(fields, where)
            continue
        if fields is None:
            raise TileListError(f"{where}: malformed line {line!r}")
        if len(fields) != len(columns):
            raise TileListError(
                f"{where}: expected {len(columns)} fields ({','.join(columns)}), "
                f"found {len(fields)}: {line!r}"
            )
        tile = _tile(where, dict(zip(columns, fields, strict=True)))
        if tile.tile_id in first_line:
            raise TileListError(
                f"{where}: duplicate tile_id {tile.tile_id!r} "
                f"(first on line {first_line[tile.tile_id]})"
            )
        first_line[tile.tile_id] = number
        tiles.append(tile)
    if columns is None:
        raise TileListError(f"{source} is empty: expected a header line {_HEADER_HINT}")
    if not tiles:
        raise TileListError(f"{source} has no tiles (only a header)")
    return tiles


def format_tile_list(tiles: Sequence[Tile]) -> str:
    """The CSV text of ``tiles``, in their order; :func:`parse_tile_list` gives them back.

    Coordinates are written with ``repr`` so every float survives exactly. The ``region``
    column is written when any tile has a region (an empty cell for those without). An empty
    sequence gives the header alone (which ``parse_tile_list`` refuses: a list needs tiles).
    """
    with_region = any(t.region is not None for t in tiles)
    header = COLUMNS + OPTIONAL_COLUMNS if with_region else COLUMNS
    lines = [",".join(header)]
    seen: set[str] = set()
    for index, tile in enumerate(tiles):
        if not isinstance(tile, Tile):
            raise TileListError(f"item {index} is not a Tile: {tile!r}")
        if tile.tile_id in seen:
            raise TileListError(f"duplicate tile_id {tile.tile_id!r} (item {index})")
        seen.add(tile.tile_id)
        row = [tile.tile_id, *(repr(float(v)) for v in tile.bounds)]
        if with_region:
            row.append(tile.region or "")
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"
