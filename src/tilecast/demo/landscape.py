"""The painting primitives of the synthetic scenes and chips: the palette, the canvas a scene is
painted on, tundra terrain, river courses and sand bars, slump outlines and their painting.

Pure numpy, no I/O, deterministic for the generator it is given. ``demo.scene`` composes whole
scenes from them, ``demo.chips`` small classification chips; both paint with the same colours
and shapes, so a model trained on one sees the other's features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tilecast.demo.noise import CoarseField, fbm, fbm_field, smoothstep, value_noise
from tilecast.demo.shapes import Blob, LocalFrame, PixelBox

# The palette (RGB, 0..255): ground covers, water, and the two parts of a slump.
TUNDRA_DRY = (130, 124, 96)
TUNDRA_GREEN = (100, 108, 76)
SHRUB = (72, 82, 58)
WATER_DEEP = (20, 29, 37)
WATER_SHALLOW = (52, 68, 70)
RIVER = (38, 50, 56)
SAND = (180, 172, 152)
WET = (76, 80, 62)
HEADWALL = (198, 190, 172)
FLOOR = (92, 84, 74)
FLOOR_DARK = (72, 66, 60)


@dataclass
class Canvas:
    """Mutable working state while a scene is painted."""

    rgb: np.ndarray  # (3, H, W) float32
    forbidden: np.ndarray  # (H, W) bool: no slump may touch these pixels
    truth: np.ndarray  # (H, W) uint8
    elevation: CoarseField  # arbitrary units

    @property
    def height(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[2])

    def blend(self, box: PixelBox, colour: np.ndarray, alpha: np.ndarray) -> None:
        """rgb = rgb * (1 - alpha) + colour * alpha inside ``box``; colour (3, h, w) or (3,)."""
        window = self.rgb[(slice(None), *box.slices)]
        colour = np.asarray(colour, dtype=np.float32)
        if colour.ndim == 1:
            colour = colour[:, None, None]
        window += alpha[None] * (colour - window)


def as_rgb(rgb: tuple[int, int, int]) -> np.ndarray:
    """A palette colour as a float32 (3,) array, ready to blend."""
    return np.asarray(rgb, dtype=np.float32)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A size between ``low`` and ``high``, small ones as likely per octave as large ones."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def outline_harmonics(
    rng: np.random.Generator, *, strength: float, orders: range = range(2, 7)
) -> tuple[tuple[int, float, float], ...]:
    """(order, amplitude, phase) of the wobbles of a blob's outline; amplitude ~ 1/order."""
    return tuple(
        (k, float(strength * rng.uniform(0.2, 1.0) / k), float(rng.uniform(0, 2 * np.pi)))
        for k in orders
    )


def paint_terrain(rng: np.random.Generator, *, height: int, width: int) -> Canvas:
    """A fresh canvas of tundra: dry and green ground by moisture, shrub clumps, a faint
    hillshade of the relief (kept as the canvas's elevation) and a fine grain."""
    shape = {"height": height, "width": width}
    relief = fbm_field(rng, cells=(1024, 512, 256, 128, 64), gain=0.6, **shape)
    moisture = fbm(rng, cells=(384, 192, 96, 48, 24), gain=0.6, **shape)
    shrubs = fbm(rng, cells=(64, 32, 16, 8), gain=0.7, **shape)
    grain = fbm(rng, cells=(8, 4, 2), gain=0.8, **shape)

    # dry <-> green by moisture, darker shrub clumps where the shrub noise peaks
    wet = smoothstep(-0.4, 0.4, moisture + 0.15 * shrubs)
    shrub = smoothstep(0.2, 0.5, shrubs + 0.3 * moisture) * 0.7
    dry, green, dark = as_rgb(TUNDRA_DRY), as_rgb(TUNDRA_GREEN), as_rgb(SHRUB)
    rgb = dry[:, None, None] + wet[None] * (green - dry)[:, None, None]
    rgb += shrub[None] * (dark[:, None, None] - rgb)

    # hillshade from the north-west (computed on the coarse grid, so it stays smooth), and
    # fine-grained brightness texture
    def hillshade(grid: np.ndarray) -> np.ndarray:
        gy, gx = np.gradient(grid)
        return np.clip((gy + gx) * np.float32(-25.0), -1.0, 1.0)

    light = relief.map(hillshade).resample()
    rgb *= (1.0 + 0.08 * light + 0.06 * grain)[None]
    return Canvas(
        rgb=rgb.astype(np.float32),
        forbidden=np.zeros((height, width), dtype=bool),
        truth=np.zeros((height, width), dtype=np.uint8),
        elevation=relief,
    )


def river_path(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A meandering centre line (n, 2) as (row, col), entering on one edge, leaving another."""
    side = int(rng.integers(4))
    if side == 0:
        start, heading = (0.0, rng.uniform(0.2, 0.8) * width), np.pi / 2
    elif side == 1:
        start, heading = (height, rng.uniform(0.2, 0.8) * width), -np.pi / 2
    elif side == 2:
        start, heading = (rng.uniform(0.2, 0.8) * height, 0.0), 0.0
    else:
        start, heading = (rng.uniform(0.2, 0.8) * height, width), np.pi
    heading += rng.uniform(-0.5, 0.5)
    wavelength = rng.uniform(150, 420)
    amplitude = rng.uniform(0.5, 1.1)
    phase = rng.uniform(0, 2 * np.pi)
    step = 1.5
    n = int(3 * (height + width) / step)
    s = np.arange(n) * step
    drift = np.cumsum(rng.normal(0, 0.015, n))
    angle = heading + amplitude * np.sin(2 * np.pi * s / wavelength + phase) + drift
    rows = start[0] + np.cumsum(np.sin(angle) * step)
    cols = start[1] + np.cumsum(np.cos(angle) * step)
    inside = (rows > -20) & (rows < height + 20) & (cols > -20) & (cols < width + 20)
    leave = np.flatnonzero(~inside)
    end = int(leave[0]) if leave.size else n
    return np.stack([rows[:end], cols[:end]], axis=1)


def distance_to_path(path: np.ndarray, reach: int, height: int, width: int) -> np.ndarray:
    """Distance (pixels) from pixel centres to the nearest path point, inf beyond ``reach``."""
    dist = np.full(height * width, np.inf, dtype=np.float32)
    offs = np.arange(-reach, reach + 1)
    dr, dc = np.meshgrid(offs, offs, indexing="ij")
    keep = dr**2 + dc**2 <= (reach + 1) ** 2
    dr, dc = dr[keep], dc[keep]
    base_r = np.floor(path[:, 0]).astype(np.int64)
    base_c = np.floor(path[:, 1]).astype(np.int64)
    rr = base_r[:, None] + dr[None]
    cc = base_c[:, None] + dc[None]
    d = np.hypot(rr + 0.5 - path[:, :1], cc + 0.5 - path[:, 1:]).astype(np.float32)
    ok = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
    np.minimum.at(dist, (rr * width + cc)[ok], d[ok])
    return dist.reshape(height, width)


def sand_bar(
    rng: np.random.Generator,
    path: np.ndarray,
    i: int,
    *,
    half_width: float,
    sizes: tuple[float, float],
) -> Blob:
    """A sand bar beside point ``i`` of a river's path, on a bank drawn at random, elongated
    along the flow (draws: its size, its bank, its outline)."""
    tangent = path[i + 1] - path[i - 1]
    normal = np.array([tangent[1], -tangent[0]]) / (np.hypot(*tangent) + 1e-6)
    size = float(rng.uniform(*sizes))
    centre = path[i] + normal * (half_width + size * 0.6) * rng.choice([-1, 1])
    return Blob(
        cy=float(centre[0]),
        cx=float(centre[1]),
        angle=float(np.arctan2(tangent[0], tangent[1])),
        semi_u=size * 2.0,
        semi_v=size,
        harmonics=outline_harmonics(rng, strength=0.2),
    )


def paint_patch(
    canvas: Canvas, blob: Blob, colour: np.ndarray, *, opacity: float, avoid: bool = True
) -> None:
    """Paint a soft-edged patch, unless ``avoid`` and it would touch a forbidden pixel; its
    pixels (and 3 px around) become forbidden."""
    box = blob.box(margin=3, height=canvas.height, width=canvas.width)
    if box.shape[0] <= 0 or box.shape[1] <= 0:
        return
    frame = blob.frame(box)
    inside_px = (1.0 - frame.rho) * frame.radius
    if avoid and np.any(canvas.forbidden[box.slices] & (inside_px > -3.0)):
        return
    alpha = np.clip(inside_px / 2.0 + 0.5, 0.0, 1.0) * np.float32(opacity)
    canvas.blend(box, colour, alpha)
    canvas.forbidden[box.slices] |= inside_px > -3.0


@dataclass(frozen=True)
class SlumpShape:
    semi_u: float
    semi_v: float
    tongue_length: float
    tongue_width: tuple[float, float]

    @property
    def reach_down(self) -> float:
        """Centre to the outlet tip, pixels."""
        return max(self.semi_u, self.tongue_length)


def slump_shape(rng: np.random.Generator, size: float) -> SlumpShape:
    """A bowl (the headwall amphitheatre) and a flow tongue, largest extent ``size`` pixels."""
    if rng.random() < 0.55:  # teardrop: round bowl tapering into a longer outlet tongue
        squash = float(rng.uniform(0.8, 1.0))
        reach = float(rng.uniform(1.5, 2.5))  # tongue length / semi_u
        widths = (float(rng.uniform(0.7, 0.9)), float(rng.uniform(0.15, 0.35)))
    else:  # horseshoe: a wide amphitheatre with a short, broad outlet
        squash = float(rng.uniform(0.55, 0.8))
        reach = float(rng.uniform(1.1, 1.5))
        widths = (float(rng.uniform(0.7, 0.9)), float(rng.uniform(0.35, 0.6)))
    # along u the outline spans semi_u * (1 + reach); across it 2 * semi_v
    semi_v = size / max(2.0, (1.0 + reach) * squash)
    semi_u = semi_v * squash
    return SlumpShape(
        semi_u=semi_u,
        semi_v=semi_v,
        tongue_length=semi_u * reach,
        tongue_width=(semi_v * widths[0], semi_v * widths[1]),
    )


def paint_slump(rng: np.random.Generator, canvas: Canvas, blob: Blob, frame: LocalFrame) -> None:
    """A slump in ``blob``'s outline: a streaked muddy floor and a bright headwall arc upslope."""
    box = frame.box
    inside_px = (1.0 - frame.rho) * frame.radius  # > 0 inside, pixels from the outline
    alpha = np.clip(inside_px / 1.2 + 0.5, 0.0, 1.0)
    scale = max(blob.semi_u, blob.semi_v)
    length = max(blob.semi_u, blob.tongue_length)

    # floor: muddy grey-brown, darker and wetter under the headwall, flow lines converging
    # downslope towards the outlet, mottled, partly revegetated in older slumps
    converge = 1.0 / (1.0 - 0.6 * np.clip(frame.u / length, 0.0, 1.0))
    lines = value_noise(rng, height=1, width=int(8 * scale) + 16, cell=float(rng.uniform(3, 6)))
    index = np.clip((frame.v * converge + 4 * scale + 8).astype(np.int64), 0, lines.shape[1] - 1)
    mottle = value_noise(rng, height=box.shape[0], width=box.shape[1], cell=3.0)
    lobes = value_noise(rng, height=box.shape[0], width=box.shape[1], cell=max(6.0, scale / 4))
    texture = lines[0][index] * np.float32(5.0) + mottle * np.float32(5.0) + lobes * np.float32(9.0)
    along = np.clip(frame.u / length, -1.0, 1.0)
    floor = as_rgb(FLOOR)[:, None, None] + (texture + 6.0 * along)[None]
    wet = smoothstep(0.3, 0.85, -frame.u / scale) * 0.6
    floor += wet[None] * (as_rgb(FLOOR_DARK)[:, None, None] - floor)
    window = canvas.rgb[(slice(None), *box.slices)]
    floor += np.float32(rng.uniform(0.0, 0.3)) * (window - floor)

    # headwall: a bright bare scar along the upslope arc of the outline
    thickness = float(np.clip(0.1 * scale, 1.6, 20.0)) * float(rng.uniform(0.8, 1.25))
    arc = float(rng.uniform(np.deg2rad(60), np.deg2rad(105)))
    upslope = np.cos(frame.theta - np.pi)  # 1 straight upslope
    arc_weight = smoothstep(np.cos(arc), np.cos(arc) + 0.3, upslope)
    ragged = value_noise(rng, height=box.shape[0], width=box.shape[1], cell=2.5)
    depth = thickness * (1.0 + 0.35 * ragged)
    band = smoothstep(-0.6, 0.4, inside_px) * (
        1.0 - smoothstep(depth - 0.6, depth + 0.8, inside_px)
    )
    headwall_w = (arc_weight * band)[None]
    headwall = as_rgb(HEADWALL)[:, None, None] + (ragged * np.float32(10.0))[None]
    colour = floor + headwall_w * (headwall - floor)
    canvas.blend(box, colour, alpha)
