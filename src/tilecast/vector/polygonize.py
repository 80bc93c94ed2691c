"""Polygons from a binary mosaic, block by block, identical to polygonizing it whole.

Objects are the 8-connected components of the pixels equal to ``value`` (1): fragments that
meet only at a pixel corner are one object, written as one MultiPolygon whose parts touch at
that corner. NoData (255) and 0 are background.

How a region larger than memory is done
    The raster is read in ``block`` x ``block`` windows, row-major. Each block is polygonized
    on its own (``rasterio.features.shapes``, 8-connectivity), in *pixel* coordinates: the
    piece's vertices are whole pixel-corner indexes of the full raster (the block's offset is
    the transform), so they are exact in float64 and a vertex on a block edge is the same
    number in both blocks.

    A piece that touches none of its block's internal edges (edges shared with another block,
    not the raster's border) is a whole object and is emitted at once. A piece that touches
    one is held back and joined (union-find) with every held piece of an already processed
    neighbouring block it intersects; two pieces of different blocks intersect exactly when
    their pixels are 8-connected across the edge or corner, because every vertex lies on the
    integer lattice. When a block row is done, a held group none of whose pieces reaches the
    line below that row cannot grow any more: its pieces are unioned and the object is
    emitted. So memory holds the pieces that touch internal edges, not the region.

Rows read apart, joined in one place
    Reading and joining are two functions: :func:`block_pieces` reads blocks and returns, per
    block, the whole objects (finished) and the held pieces; :func:`join_blocks` runs the
    union-find over every block's held pieces, row-major. :func:`polygonize_blocks` chains
    the two lazily over the whole raster; a cluster runs :func:`block_pieces` on bands of
    block rows in separate tasks and :func:`join_blocks` once over their results in order,
    which is the same sequence of pieces, so the same objects come out in the same order.

Canonical form
    Every object, whole or joined, goes through the same steps: union of its pieces (GEOS
    overlay, so the result is OGC-valid: a corner contact becomes two parts, or a hole that
    touches its shell at a point), removal of collinear vertices (block cuts leave some on
    straight edges), pixel -> map coordinates (``x0 + col * res_x``, ``y0 - row * res_y``,
    per vertex, so the same pixel corner gives the same map coordinate whatever the block),
    MultiPolygon, ``shapely.normalize``. The output therefore does not depend on ``block``;
    only the order in which objects come out does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from tilecast.errors import InputError
from tilecast.grid import PixelGrid, Window
from tilecast.io.vsi import without_credentials

__all__ = [
    "BinaryRaster",
    "BlockPieces",
    "Piece",
    "block_pieces",
    "block_rows",
    "block_windows",
    "join_blocks",
    "polygonize_blocks",
    "to_multipolygon",
]


class BinaryRaster(Protocol):
    """What the polygonizer reads: a grid and boundless window reads of band 1."""

    @property
    def grid(self) -> PixelGrid: ...

    def read(self, window: Window) -> np.ndarray: ...


def block_windows(height: int, width: int, block: int) -> list[list[Window]]:
    """The ``block`` x ``block`` windows covering a ``height`` x ``width`` raster, by block row."""
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise InputError(f"block must be a positive integer, {block!r} is given")
    return [
        [
            Window(row, col, min(block, height - row), min(block, width - col))
            for col in range(0, width, block)
        ]
        for row in range(0, height, block)
    ]


def to_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    """The polygonal parts of ``geom`` as one MultiPolygon (a Polygon is wrapped)."""
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and not p.is_empty]
    polygons: list[Polygon] = []
    for part in parts:
        polygons.extend(to_multipolygon(part).geoms)
    return MultiPolygon(polygons)


@dataclass(frozen=True)
class Piece:
    """A piece of an object that touches an internal block edge: it waits for its neighbours.

    ``geom`` is in whole-raster pixel coordinates, so pieces of different blocks (read by
    different processes) meet exactly.
    """

    geom: BaseGeometry
    bounds: tuple[float, float, float, float]


@dataclass(frozen=True)
class BlockPieces:
    """What one block holds: its whole objects (finished: map coordinates, canonical form)
    and its pieces that touch an internal block edge. ``block`` is (block row, block col)."""

    block: tuple[int, int]
    whole: tuple[MultiPolygon, ...]
    held: tuple[Piece, ...]


class _Groups:
    """Union-find over held pieces: group id -> piece ids, piece id -> group id."""

    def __init__(self) -> None:
        self.group_of: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}

    def add(self, pid: int) -> None:
        self.group_of[pid] = pid
        self.members[pid] = [pid]

    def join(self, a: int, b: int) -> None:
        ga, gb = self.group_of[a], self.group_of[b]
        if ga == gb:
            return
        if len(self.members[ga]) < len(self.members[gb]):
            ga, gb = gb, ga
        for pid in self.members[gb]:
            self.group_of[pid] = ga
        self.members[ga].extend(self.members.pop(gb))

    def pop(self, gid: int) -> list[int]:
        pids = self.members.pop(gid)
        for pid in pids:
            del self.group_of[pid]
        return pids


def _boxes_meet(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _finish(pieces: list[BaseGeometry], grid: PixelGrid) -> MultiPolygon:
    """The canonical map-coordinate MultiPolygon of one object from its pixel-space pieces."""
    geom = shapely.union_all(pieces)
    geom = shapely.simplify(geom, 0.0)  # collinear vertices only: every vertex is a lattice point
    x0, y0, rx, ry = grid.x0, grid.y0, grid.res_x, grid.res_y

    def to_map(coords: np.ndarray) -> np.ndarray:
        return np.column_stack([x0 + coords[:, 0] * rx, y0 - coords[:, 1] * ry])

    return shapely.normalize(to_multipolygon(shapely.transform(geom, to_map)))


def _block_pieces(mask: np.ndarray, window: Window) -> Iterator[BaseGeometry]:
    """The 8-connected components of ``mask`` as valid geometries in full-raster pixel space."""
    transform = Affine(1.0, 0.0, float(window.col), 0.0, 1.0, float(window.row))
    with without_credentials():
        found = list(shapes(mask.view(np.uint8), mask=mask, connectivity=8, transform=transform))
    for geojson, _ in found:
        # GDAL's 8-connected rings may touch themselves at a corner: make them OGC-valid
        yield shapely.make_valid(shape(geojson))


def block_rows(band: Window, block: int) -> range:
    """The block rows of the ``block`` lattice that the rows of ``band`` cover (a band starts
    on a block row)."""
    if band.row % block:
        raise InputError(f"band {band} does not start on a row of the {block}-px block lattice")
    return range(band.row // block, -(-band.row_stop // block))


def block_pieces(
    binary_reader: BinaryRaster, *, block: int = 2048, value: int = 1, rows: range | None = None
) -> Iterator[BlockPieces]:
    """The pieces of every block of the block rows ``rows`` (default: all), row-major, one
    :class:`BlockPieces` per block, each yielded as soon as its block is read. A piece that
    touches none of its block's internal edges is finished at once; the others are held for
    :func:`join_blocks`. Rows of a raster may be read by separate processes."""
    grid = binary_reader.grid
    height, width = grid.shape
    lattice = block_windows(height, width, block)
    for bi in range(len(lattice)) if rows is None else rows:
        if not 0 <= bi < len(lattice):
            raise InputError(f"block row {bi} is outside the raster's {len(lattice)} block rows")
        for bj, window in enumerate(lattice[bi]):
            data = np.asarray(binary_reader.read(window))
            if data.shape != window.shape:
                raise InputError(
                    f"reader returned shape {data.shape} for window {window}, "
                    f"expected {window.shape}"
                )
            mask = data == value
            whole: list[MultiPolygon] = []
            held: list[Piece] = []
            if mask.any():
                internal = (
                    window.col > 0,  # left
                    window.row > 0,  # top
                    window.col_stop < width,  # right
                    window.row_stop < height,  # bottom
                )
                edges = (window.col, window.row, window.col_stop, window.row_stop)
                for piece in _block_pieces(mask, window):
                    bounds = piece.bounds
                    touches = (
                        (internal[0] and bounds[0] == edges[0])
                        or (internal[1] and bounds[1] == edges[1])
                        or (internal[2] and bounds[2] == edges[2])
                        or (internal[3] and bounds[3] == edges[3])
                    )
                    if touches:
                        held.append(Piece(piece, bounds))
                    else:
                        whole.append(_finish([piece], grid))
            yield BlockPieces((bi, bj), tuple(whole), tuple(held))


def join_blocks(
    blocks: Iterable[BlockPieces], *, grid: PixelGrid, block: int
) -> Iterator[MultiPolygon]:
    """Every object of the raster on ``grid`` from its blocks' pieces (``blocks``: every block
    of the ``block`` lattice, row-major, wherever they were read): whole objects as they come;
    a held piece is joined (union-find) with every held piece of a neighbouring block it
    intersects, and a group is emitted, unioned, once the block row below cannot extend it.
    The same pieces in the same order give the same objects in the same order, however the
    rows were cut among readers."""
    height, width = grid.shape
    lattice = block_windows(height, width, block)
    order = ((bi, bj) for bi, row in enumerate(lattice) for bj in range(len(row)))
    held: dict[int, Piece] = {}
    by_block: dict[tuple[int, int], list[int]] = {}
    groups = _Groups()
    next_id = 0
    for unit in blocks:
        expected = next(order, None)
        if unit.block != expected:
            raise InputError(
                f"blocks must come row-major, each once: expected block {expected}, "
                f"got {unit.block}"
            )
        yield from unit.whole
        bi, bj = unit.block
        for piece in unit.held:
            pid = next_id
            next_id += 1
            held[pid] = piece
            groups.add(pid)
            by_block.setdefault(unit.block, []).append(pid)
            for nb in ((bi, bj - 1), (bi - 1, bj - 1), (bi - 1, bj), (bi - 1, bj + 1)):
                for other in by_block.get(nb, ()):
                    candidate = held[other]
                    if _boxes_meet(piece.bounds, candidate.bounds) and piece.geom.intersects(
                        candidate.geom
                    ):
                        groups.join(pid, other)
        if bj < len(lattice[bi]) - 1:
            continue
        # the block row is done: a group that does not reach the line below it is complete
        line = lattice[bi][0].row_stop
        last = bi == len(lattice) - 1
        growing = {
            groups.group_of[pid]
            for (row, _), pids in by_block.items()
            if row == bi and not last
            for pid in pids
            if held[pid].bounds[3] == line
        }
        for key in [k for k in by_block if k[0] < bi]:
            del by_block[key]  # never a neighbour of a later block
        for gid in [g for g in groups.members if g not in growing]:
            pids = groups.pop(gid)
            yield _finish([held.pop(pid).geom for pid in pids], grid)
        for key in list(by_block):
            by_block[key] = [pid for pid in by_block[key] if pid in held]
    missing = next(order, None)
    if missing is not None:
        raise InputError(
            f"the blocks ended before block {missing}: objects from there on would be lost"
        )


def polygonize_blocks(
    binary_reader: BinaryRaster, *, block: int = 2048, value: int = 1
) -> Iterator[MultiPolygon]:
    """Every 8-connected object of pixels equal to ``value``, as MultiPolygons in map coordinates.

    Reads ``block`` x ``block`` windows; holds only the pieces that touch internal block
    edges. The set of geometries does not depend on ``block`` (see the module notes); the
    order does. It is :func:`block_pieces` over every block, joined by :func:`join_blocks`.
    """
    return join_blocks(
        block_pieces(binary_reader, block=block, value=value),
        grid=binary_reader.grid,
        block=block,
    )
