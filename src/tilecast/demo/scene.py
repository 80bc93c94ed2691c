"""Synthetic PlanetScope-like scenes of tundra with retrogressive thaw slumps.

Pure numpy (and shapely for the truth polygons): no file I/O here; ``demo.files`` writes a
scene to disk. A scene is deterministic for its seed: each ingredient (terrain, lakes, rivers,
patches, NoData edge, slumps, radiometry) draws from its own child of
``numpy.random.SeedSequence(seed)``, so changing ``n_slumps`` changes the slumps and nothing
else.

What a scene holds, at 3 m per pixel, north up, EPSG:3413:

- tundra: multi-octave value noise mixing dry, green and shrub colours, with a faint hillshade;
- thermokarst lakes (dark, elongated, with a lighter shallow rim) and meandering rivers with
  bright sand bars;
- look-alikes, which a detector must not call slumps: bright bare patches, dark wet patches, and
  brown bare peat patches the colour of a slump floor but without a headwall;
- an irregular NoData edge on one or two sides, like a basemap footprint edge;
- slumps 50 m to 2 km across: teardrop or horseshoe outlines whose upslope side is a bright bare
  headwall arc and whose floor is darker, muddy brown, streaked downslope, with a soft edge.
  Many sit on lake shores or river banks with their outlet towards the water.

The truth mask marks the slump outline (headwall + floor) with 1, background with 0, NoData
with 255; the truth polygons are the same outlines in map coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import affine
import numpy as np
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from tilecast.demo.landscape import (
    FLOOR,
    RIVER,
    SAND,
    WATER_DEEP,
    WATER_SHALLOW,
    WET,
    Canvas,
    as_rgb,
    distance_to_path,
    log_uniform,
    outline_harmonics,
    paint_patch,
    paint_slump,
    paint_terrain,
    river_path,
    sand_bar,
    slump_shape,
)
from tilecast.demo.noise import blur121, fbm, smoothstep, value_noise
from tilecast.demo.shapes import Blob, PixelBox, polygon_mask
from tilecast.errors import InputError

PIXEL_SIZE = 3.0  # metres
CRS = "EPSG:3413"
# Upper-left corner of the default scene: 67.5 N, 135.5 W (Peel Plateau, NWT, Canada; dense
# in thaw slumps), from pyproj Transformer EPSG:4326 -> EPSG:3413 = (-2467818.37, 21536.32),
# snapped to a multiple of 3 m.
PEEL_PLATEAU_ORIGIN = (-2467818.0, 21537.0)
MIN_SLUMP_PX = 17  # about 50 m
MAX_SLUMP_PX = 667  # about 2 km
MIN_SIDE = 64
NODATA = 0
TRUTH_NODATA = 255


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """One synthetic scene and its truth (``eq=False``: arrays do not compare as one bool)."""

    image: np.ndarray  # (3, H, W) uint8 RGB; NoData 0 in every band, valid pixels 1..255
    truth: np.ndarray  # (H, W) uint8: 1 slump, 0 background, 255 NoData
    slumps: tuple[Polygon, ...]  # slump outlines in map coordinates (EPSG:3413 metres)
    transform: affine.Affine  # 3 m pixels, north up
    crs: str = CRS
    nodata: int = NODATA

    @property
    def height(self) -> int:
        return int(self.image.shape[1])

    @property
    def width(self) -> int:
        return int(self.image.shape[2])

    @property
    def valid(self) -> np.ndarray:
        """(H, W) bool: pixels with data."""
        return self.truth != TRUTH_NODATA


def _check_args(seed: int, height: int, width: int, n_slumps: int | None) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, {seed!r} is given")
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < MIN_SIDE:
            raise InputError(f"{name} must be an integer >= {MIN_SIDE}, {value!r} is given")
    if n_slumps is not None and (
        isinstance(n_slumps, bool) or not isinstance(n_slumps, int | np.integer) or n_slumps < 0
    ):
        raise InputError(f"n_slumps must be a non-negative integer or None, {n_slumps!r} is given")


def default_slump_count(height: int, width: int) -> int:
    """About one slump per 0.18 megapixel (16 km2), at least one."""
    return max(1, round(height * width / 180_000))


def generate_scene(
    *,
    seed: int,
    height: int,
    width: int,
    origin: tuple[float, float] | None = None,
    n_slumps: int | None = None,
    nodata_margin: bool = True,
) -> SyntheticScene:
    """Paint a deterministic synthetic scene.

    ``origin`` is the map position (x, y) of the upper-left corner, EPSG:3413 metres (default
    :data:`PEEL_PLATEAU_ORIGIN`). ``n_slumps`` is the number of slumps asked for (default
    :func:`default_slump_count`); fewer are placed when the scene has no room left, so count
    ``len(scene.slumps)``.
    """
    _check_args(seed, height, width, n_slumps)
    x0, y0 = PEEL_PLATEAU_ORIGIN if origin is None else (float(origin[0]), float(origin[1]))
    wanted = default_slump_count(height, width) if n_slumps is None else int(n_slumps)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(8)]
    rng_terrain, rng_lakes, rng_rivers, rng_patches, rng_edge, rng_slumps, rng_light, rng_px = (
        streams
    )

    canvas = paint_terrain(rng_terrain, height=height, width=width)
    lakes = _add_lakes(rng_lakes, canvas)
    rivers = _add_rivers(rng_rivers, canvas)
    _add_patches(rng_patches, canvas)
    nodata = (
        _nodata_edge(rng_edge, canvas) if nodata_margin else np.zeros((height, width), dtype=bool)
    )
    outlines = _add_slumps(rng_slumps, canvas, lakes=lakes, rivers=rivers, wanted=wanted)
    _radiometry(rng_light, canvas)

    rgb = blur121(canvas.rgb)
    rgb += rng_px.standard_normal(rgb.shape, dtype=np.float32) * np.float32(1.6)
    image = np.clip(np.rint(rgb), 1, 255).astype(np.uint8)
    image[:, nodata] = NODATA
    truth = canvas.truth
    truth[nodata] = TRUTH_NODATA

    transform = affine.Affine(PIXEL_SIZE, 0.0, x0, 0.0, -PIXEL_SIZE, y0)
    polygons = tuple(_to_map(outline, transform) for outline in outlines)
    return SyntheticScene(image=image, truth=truth, slumps=polygons, transform=transform)


def _to_map(outline: np.ndarray, transform: affine.Affine) -> Polygon:
    xs = transform.c + outline[:, 0] * transform.a
    ys = transform.f + outline[:, 1] * transform.e
    return orient(Polygon(np.stack([xs, ys], axis=1)), sign=1.0)


# --- water -----------------------------------------------------------------------------------


def _add_lakes(rng: np.random.Generator, canvas: Canvas) -> list[Blob]:
    height, width = canvas.height, canvas.width
    count = rng.poisson(height * width / 1024**2 * 3.0)
    trend = rng.uniform(0, np.pi)  # thermokarst lakes share an orientation
    lakes = []
    deep, shallow = as_rgb(WATER_DEEP), as_rgb(WATER_SHALLOW)
    for _ in range(count):
        semi = log_uniform(rng, 12, min(220, 0.18 * min(height, width)))
        lake = Blob(
            cy=float(rng.uniform(0, height)),
            cx=float(rng.uniform(0, width)),
            angle=float(trend + rng.normal(0, 0.25)),
            semi_u=semi * float(rng.uniform(1.0, 1.9)),
            semi_v=semi,
            harmonics=outline_harmonics(rng, strength=0.25),
        )
        box = lake.box(margin=6, height=height, width=width)
        if box.shape[0] <= 0 or box.shape[1] <= 0:
            continue
        frame = lake.frame(box)
        inside_px = (1.0 - frame.rho) * frame.radius  # distance inside the shore, pixels
        alpha = np.clip(inside_px + 0.5, 0.0, 1.0)
        depth = smoothstep(0.0, float(rng.uniform(4, 14)), inside_px)
        colour = shallow[:, None, None] + depth[None] * (deep - shallow)[:, None, None]
        canvas.blend(box, colour, alpha)
        canvas.forbidden[box.slices] |= inside_px > -4.0
        lakes.append(lake)
    return lakes


def _add_rivers(rng: np.random.Generator, canvas: Canvas) -> list[np.ndarray]:
    height, width = canvas.height, canvas.width
    count = rng.choice([0, 1, 1, 2]) if max(height, width) >= 256 else 0
    river, sand = as_rgb(RIVER), as_rgb(SAND)
    paths = []
    for _ in range(count):
        path = river_path(rng, height, width)
        if len(path) < 20:
            continue
        half = float(rng.uniform(1.5, 6.0))
        dist = distance_to_path(path, int(half) + 6, height, width)
        near = dist < half + 6
        rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
        if rows.size == 0:
            continue
        box = PixelBox(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        alpha = np.clip(half + 0.5 - dist[box.slices], 0.0, 1.0)
        canvas.blend(box, river, alpha)
        canvas.forbidden |= dist < half + 4
        paths.append(path)
        # sand bars on the inside of a few bends
        for index in rng.choice(len(path), size=min(len(path) // 200 + 1, 6), replace=False):
            i = int(np.clip(index, 1, len(path) - 2))
            bar = sand_bar(rng, path, i, half_width=half, sizes=(3, 9))
            paint_patch(canvas, bar, sand, opacity=0.85, avoid=False)
    return paths


def _add_patches(rng: np.random.Generator, canvas: Canvas) -> None:
    """Look-alikes: bright bare patches (gravel, bare hilltops) and dark wet patches."""
    height, width = canvas.height, canvas.width
    scale = height * width / 1024**2
    for _ in range(rng.poisson(4.0 * scale)):
        size = log_uniform(rng, 4, 22)
        blob = Blob(
            cy=float(rng.uniform(0, height)),
            cx=float(rng.uniform(0, width)),
            angle=float(rng.uniform(0, 2 * np.pi)),
            semi_u=size * float(rng.uniform(1.0, 2.0)),
            semi_v=size,
            harmonics=outline_harmonics(rng, strength=0.3),
        )
        tint = as_rgb(SAND) + rng.normal(0, 8, 3).astype(np.float32)
        paint_patch(canvas, blob, tint, opacity=float(rng.uniform(0.5, 0.9)))
    for _ in range(rng.poisson(5.0 * scale)):
        size = log_uniform(rng, 10, 70)
        blob = Blob(
            cy=float(rng.uniform(0, height)),
            cx=float(rng.uniform(0, width)),
            angle=float(rng.uniform(0, 2 * np.pi)),
            semi_u=size * float(rng.uniform(1.0, 2.2)),
            semi_v=size,
            harmonics=outline_harmonics(rng, strength=0.35),
        )
        paint_patch(canvas, blob, as_rgb(WET), opacity=float(rng.uniform(0.4, 0.8)))
    for _ in range(rng.poisson(2.0 * scale)):  # bare peat, drained pond floors: slump-brown
        size = log_uniform(rng, 8, 45)
        blob = Blob(
            cy=float(rng.uniform(0, height)),
            cx=float(rng.uniform(0, width)),
            angle=float(rng.uniform(0, 2 * np.pi)),
            semi_u=size * float(rng.uniform(1.0, 1.8)),
            semi_v=size,
            harmonics=outline_harmonics(rng, strength=0.3),
        )
        paint_patch(canvas, blob, as_rgb(FLOOR), opacity=float(rng.uniform(0.5, 0.85)))


# --- NoData edge -----------------------------------------------------------------------------


def _edge_profile(rng: np.random.Generator, length: int, across: int) -> np.ndarray:
    """Depth (pixels) of a footprint edge along one side: slanted, stepped, a little ragged."""
    t = np.arange(length, dtype=np.float32)
    depth = rng.uniform(0.03, 0.18) * across + rng.uniform(-0.12, 0.12) * (t - length / 2)
    steps = np.zeros(length, dtype=np.float32)
    position = 0
    while position < length:
        run = int(rng.integers(16, 120))
        steps[position : position + run] = rng.normal(0, 3)
        position += run
    ragged = value_noise(rng, height=1, width=length, cell=6.0)[0] * 2.0
    return np.maximum(depth + steps + ragged, 0.0)


def _nodata_edge(rng: np.random.Generator, canvas: Canvas) -> np.ndarray:
    height, width = canvas.height, canvas.width
    sides = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
    rows = np.arange(height, dtype=np.float32)[:, None] + 0.5
    cols = np.arange(width, dtype=np.float32)[None, :] + 0.5
    nodata = np.zeros((height, width), dtype=bool)
    buffered = np.zeros((height, width), dtype=bool)
    margin = 10.0
    for side in sides:
        if side in (0, 1):  # top, bottom: depth varies along columns
            depth = _edge_profile(rng, width, height)[None, :]
            inward = rows if side == 0 else height - rows
        else:  # left, right: depth varies along rows
            depth = _edge_profile(rng, height, width)[:, None]
            inward = cols if side == 2 else width - cols
        nodata |= inward < depth
        buffered |= inward < depth + margin
    canvas.forbidden |= buffered
    return nodata


# --- slumps ----------------------------------------------------------------------------------


def _slump_sizes(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """Largest extents in pixels, mostly small-medium, largest first."""
    cap = max(MIN_SLUMP_PX, min(MAX_SLUMP_PX, 0.4 * min(height, width)))
    u = rng.random(count) ** 3.0
    sizes = MIN_SLUMP_PX * (MAX_SLUMP_PX / MIN_SLUMP_PX) ** u
    return np.sort(np.clip(sizes, MIN_SLUMP_PX, cap))[::-1]


def _downslope(canvas: Canvas, row: float, col: float, rng: np.random.Generator) -> float:
    """Downhill direction at a pixel (radians, image frame), or a random one on flat ground."""
    field = canvas.elevation
    grid = field.grid
    r = int(np.clip(row / field.step, 1, grid.shape[0] - 2))
    c = int(np.clip(col / field.step, 1, grid.shape[1] - 2))
    gy = grid[r + 1, c] - grid[r - 1, c]
    gx = grid[r, c + 1] - grid[r, c - 1]
    if rng.random() < 0.4 or np.hypot(gx, gy) < 1e-4:
        return float(rng.uniform(0, 2 * np.pi))
    return float(np.arctan2(-gy, -gx) + rng.normal(0, 0.4))


def _candidate(
    rng: np.random.Generator,
    canvas: Canvas,
    size: float,
    lakes: list[Blob],
    rivers: list[np.ndarray],
) -> Blob:
    shape = slump_shape(rng, size)
    reach_down = shape.reach_down
    anchor = rng.random()
    if anchor < 0.35 and lakes:  # on a lake shore, outlet towards the water
        lake = lakes[int(rng.integers(len(lakes)))]
        phi = float(rng.uniform(-np.pi, np.pi))
        r = float(lake.radius(np.array([phi]))[0])
        direction = lake.angle + phi
        gap = reach_down + float(rng.uniform(5, 9))
        cy = lake.cy + np.sin(direction) * (r + gap)
        cx = lake.cx + np.cos(direction) * (r + gap)
        angle = direction + np.pi + rng.normal(0, 0.2)
    elif anchor < 0.55 and rivers:  # on a river bank
        path = rivers[int(rng.integers(len(rivers)))]
        i = int(rng.integers(1, len(path) - 1))
        tangent = path[i + 1] - path[i - 1]
        normal = np.array([tangent[1], -tangent[0]]) / (np.hypot(*tangent) + 1e-6)
        normal *= rng.choice([-1.0, 1.0])
        gap = reach_down + float(rng.uniform(10, 14))
        cy, cx = path[i] + normal * gap
        angle = float(np.arctan2(-normal[0], -normal[1]) + rng.normal(0, 0.2))
    else:  # on an open slope, outlet downhill
        cy = float(rng.uniform(0, canvas.height))
        cx = float(rng.uniform(0, canvas.width))
        angle = _downslope(canvas, cy, cx, rng)
    return Blob(
        cy=float(cy),
        cx=float(cx),
        angle=float(angle),
        semi_u=shape.semi_u,
        semi_v=shape.semi_v,
        tongue_length=shape.tongue_length,
        tongue_width=shape.tongue_width,
        harmonics=outline_harmonics(rng, strength=0.08, orders=range(2, 9)),
    )


def _room_for(canvas: Canvas, blob: Blob) -> bool:
    """True when the blob, grown by 4 px, stays inside the scene and off forbidden pixels.

    Checked on a sparse grid first (a stride that keeps about 48 samples across the blob, with
    the margin grown by the stride), then exactly.
    """
    height, width = canvas.height, canvas.width
    if not blob.fits(margin=3, height=height, width=width):
        return False
    stride = max(1, int(blob.extent() // 24))
    for step, margin in ((stride, 4.0 + stride), (1, 4.0)):
        box = blob.box(margin=margin, height=height, width=width)
        frame = blob.frame(box, stride=step)
        footprint = (1.0 - frame.rho) * frame.radius > -margin
        if np.any(
            canvas.forbidden[box.row0 : box.row1 : step, box.col0 : box.col1 : step] & footprint
        ):
            return False
        if step == 1:
            break
    return True


def _add_slumps(
    rng: np.random.Generator,
    canvas: Canvas,
    *,
    lakes: list[Blob],
    rivers: list[np.ndarray],
    wanted: int,
) -> list[np.ndarray]:
    height, width = canvas.height, canvas.width
    outlines = []
    for size in _slump_sizes(rng, wanted, height, width):
        extent = float(size)
        for attempt in range(60):
            if attempt >= 30:
                extent = max(MIN_SLUMP_PX, extent * 0.9)
            blob = _candidate(rng, canvas, extent, lakes, rivers)
            if not _room_for(canvas, blob):
                continue
            box = blob.box(margin=4, height=height, width=width)
            frame = blob.frame(box)
            paint_slump(rng, canvas, blob, frame)
            canvas.truth[box.slices] |= polygon_mask(blob.polygon(), box).astype(np.uint8)
            canvas.forbidden[box.slices] |= (1.0 - frame.rho) * frame.radius > -4.0
            outlines.append(blob.outline())
            break
    return outlines


# --- radiometry ------------------------------------------------------------------------------


def _radiometry(rng: np.random.Generator, canvas: Canvas) -> None:
    """Smooth brightness drift, and sometimes a mosaic seam between two acquisitions."""
    height, width = canvas.height, canvas.width
    gain = 1.0 + 0.05 * fbm(rng, height=height, width=width, cells=(2048, 1024, 512))
    if rng.random() < 0.5:
        angle = rng.uniform(0, np.pi)
        row0, col0 = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        rows = np.arange(height, dtype=np.float32)[:, None] - row0
        cols = np.arange(width, dtype=np.float32)[None, :] - col0
        side = smoothstep(-3.0, 3.0, rows * np.cos(angle) - cols * np.sin(angle))
        gain = gain * (1.0 + np.float32(rng.uniform(-0.06, 0.06)) * side)
    canvas.rgb *= gain[None].astype(np.float32)
