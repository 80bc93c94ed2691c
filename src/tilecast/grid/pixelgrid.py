"""A north-up pixel grid in map coordinates, and the one explicit snapping step.

:class:`PixelGrid` is a raster's georeferencing reduced to what tiling needs: the map
coordinates of the upper-left corner ``(x0, y0)``, the pixel size ``(res_x, res_y)`` (both
positive; rows go down, so ``y`` decreases with the row), the raster size in pixels and the
CRS as a string. Rotated or sheared grids are refused (``from_affine``): they are "invalid
georeferencing" for this job.

Map coordinates enter pixel space in exactly one place, :func:`snap_bbox`. Each edge of the
box must lie within :data:`SNAP_TOLERANCE_PX` of a pixel-grid line; otherwise it raises
:class:`OffGridError` saying which edge is how far off. There is no other float tolerance in
``tilecast.grid``. Going back (:func:`window_bounds`, :func:`window_transform`) computes each
coordinate from the integer pixel offset, ``x0 + col * res_x``, never by accumulating floats,
so ``snap_bbox(grid, *window_bounds(grid, w)) == w``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilecast.errors import InputError
from tilecast.grid.windows import Window, as_finite, as_positive_int

__all__ = [
    "SNAP_TOLERANCE_PX",
    "OffGridError",
    "PixelGrid",
    "snap_bbox",
    "window_bounds",
    "window_grid",
    "window_transform",
]

#: How far (in pixels) a map coordinate may be from a pixel-grid line and still snap to it.
#: The only float tolerance in ``tilecast.grid``: it absorbs the rounding of ``x0 + n * res``
#: in float64 (about 1e-9 px for EPSG:3413 metres), not real misalignment.
SNAP_TOLERANCE_PX = 1e-6


class OffGridError(InputError):
    """A map coordinate does not lie on the pixel grid (beyond :data:`SNAP_TOLERANCE_PX`)."""


@dataclass(frozen=True)
class PixelGrid:
    """A north-up raster grid: upper-left corner, positive pixel size, size in pixels, CRS."""

    x0: float
    y0: float
    res_x: float
    res_y: float
    width: int
    height: int
    crs: str

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "res_x", "res_y"):
            object.__setattr__(self, name, as_finite(name, getattr(self, name)))
        if self.res_x <= 0 or self.res_y <= 0:
            raise InputError(
                f"pixel size must be positive, (res_x, res_y) = ({self.res_x}, {self.res_y}) is given"
            )
        object.__setattr__(self, "width", as_positive_int("width", self.width))
        object.__setattr__(self, "height", as_positive_int("height", self.height))
        if not isinstance(self.crs, str) or not self.crs.strip():
            raise InputError(f"crs must be a non-empty string, {self.crs!r} is given")

    @classmethod
    def from_affine(
        cls,
        a: float,
        b: float,
        c: float,
        d: float,
        e: float,
        f: float,
        *,
        width: int,
        height: int,
        crs: str,
    ) -> PixelGrid:
        """From the six coefficients of rasterio's ``Affine`` (``a=res_x, c=x0, e=-res_y, f=y0``).

        Raises :class:`InputError` ("invalid georeferencing") for a rotated or sheared grid
        (``b`` or ``d`` not 0), a south-up grid (``e >= 0``) or ``a <= 0``.
        """
        coeffs = {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f}
        values = {k: as_finite(f"affine coefficient {k}", v) for k, v in coeffs.items()}
        problems = []
        if values["b"] != 0 or values["d"] != 0:
            problems.append(
                f"rotated or sheared (b={values['b']!r}, d={values['d']!r}; expected 0)"
            )
        if values["a"] <= 0:
            problems.append(f"pixel width a={values['a']!r} (expected > 0)")
        if values["e"] >= 0:
            problems.append(f"not north-up: e={values['e']!r} (expected < 0)")
        if problems:
            raise InputError(
                "invalid georeferencing: "
                + "; ".join(problems)
                + f"; transform {tuple(values.values())}"
            )
        return cls(
            x0=values["c"],
            y0=values["f"],
            res_x=values["a"],
            res_y=-values["e"],
            width=width,
            height=height,
            crs=crs,
        )

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return (self.height, self.width)

    @property
    def hw(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def res(self) -> tuple[float, float]:
        """``(res_x, res_y)``, both positive."""
        return (self.res_x, self.res_y)

    @property
    def window(self) -> Window:
        """The whole raster as a window."""
        return Window(0, 0, self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the whole raster."""
        return window_bounds(self, self.window)

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """The affine coefficients ``(a, b, c, d, e, f)`` of the whole raster."""
        return (self.res_x, 0.0, self.x0, 0.0, -self.res_y, self.y0)


def _snap_edge(
    name: str, coord: float, origin: float, res: float, sign: int
) -> tuple[int | None, str | None]:
    """The grid line index for ``coord``, or an error phrase when it is off the grid."""
    position = sign * (coord - origin) / res
    line = round(position)
    off = abs(position - line)
    if off <= SNAP_TOLERANCE_PX:
        return line, None
    nearest = origin + sign * line * res
    return None, (
        f"{name} {coord!r} is {off:.6g} px off the basemap pixel grid "
        f"(nearest grid line {nearest!r}; origin {origin!r}, pixel size {res!r})"
    )


def snap_bbox(
    grid: PixelGrid,
    minx: float,
    miny: float,
    maxx: float,
    maxy: float,
    *,
    tile_id: str | None = None,
) -> Window:
    """The pixel window of a map bbox whose edges lie on ``grid``'s pixel lines.

    The explicit snapping step: each edge must be within :data:`SNAP_TOLERANCE_PX` pixel of a
    grid line, else :class:`OffGridError` naming the tile (``tile_id``), every off edge and
    how far off it is in pixels. A non-finite, inverted or empty box raises
    :class:`InputError`. The window may lie partly or wholly outside the raster (boundless);
    callers decide what that means.
    """
    label = f"tile {tile_id}" if tile_id is not None else "bbox"
    coords = {
        name: as_finite(f"{label}: {name}", value)
        for name, value in (("minx", minx), ("miny", miny), ("maxx", maxx), ("maxy", maxy))
    }
    if coords["minx"] >= coords["maxx"] or coords["miny"] >= coords["maxy"]:
        raise InputError(
            f"{label}: degenerate bbox (minx={coords['minx']!r}, miny={coords['miny']!r}, "
            f"maxx={coords['maxx']!r}, maxy={coords['maxy']!r}); expected minx < maxx and miny < maxy"
        )
    col, bad_minx = _snap_edge("minx", coords["minx"], grid.x0, grid.res_x, +1)
    row_stop, bad_miny = _snap_edge("miny", coords["miny"], grid.y0, grid.res_y, -1)
    col_stop, bad_maxx = _snap_edge("maxx", coords["maxx"], grid.x0, grid.res_x, +1)
    row, bad_maxy = _snap_edge("maxy", coords["maxy"], grid.y0, grid.res_y, -1)
    problems = [p for p in (bad_minx, bad_miny, bad_maxx, bad_maxy) if p is not None]
    if problems:
        raise OffGridError(f"{label}: " + "; ".join(problems))
    assert col is not None and col_stop is not None and row is not None and row_stop is not None
    if col_stop <= col or row_stop <= row:
        raise InputError(
            f"{label}: bbox is narrower than one pixel ({coords['maxx'] - coords['minx']!r} x "
            f"{coords['maxy'] - coords['miny']!r} map units, pixel size {grid.res_x!r} x {grid.res_y!r})"
        )
    return Window(row, col, row_stop - row, col_stop - col)


def window_bounds(grid: PixelGrid, window: Window) -> tuple[float, float, float, float]:
    """``(minx, miny, maxx, maxy)`` of ``window``, each from its integer pixel offset."""
    minx = grid.x0 + window.col * grid.res_x
    maxx = grid.x0 + window.col_stop * grid.res_x
    maxy = grid.y0 - window.row * grid.res_y
    miny = grid.y0 - window.row_stop * grid.res_y
    return (minx, miny, maxx, maxy)


def window_transform(
    grid: PixelGrid, window: Window
) -> tuple[float, float, float, float, float, float]:
    """The affine coefficients ``(a, b, c, d, e, f)`` of ``window``'s own raster."""
    return (
        grid.res_x,
        0.0,
        grid.x0 + window.col * grid.res_x,
        0.0,
        -grid.res_y,
        grid.y0 - window.row * grid.res_y,
    )


def window_grid(grid: PixelGrid, window: Window) -> PixelGrid:
    """The grid of ``window`` as a raster of its own (same pixel size and CRS)."""
    if window.is_empty:
        raise InputError(f"an empty window {window} has no grid")
    return PixelGrid(
        x0=grid.x0 + window.col * grid.res_x,
        y0=grid.y0 - window.row * grid.res_y,
        res_x=grid.res_x,
        res_y=grid.res_y,
        width=window.width,
        height=window.height,
        crs=grid.crs,
    )
