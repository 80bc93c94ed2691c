"""Star-shaped outlines (lakes, slumps, patches) rasterised analytically in pixel space.

A :class:`Blob` is a radius function ``r(theta)`` around a centre. ``theta`` is measured in the
blob's own frame: ``u`` points along ``angle`` (for a slump: downslope, from the headwall to the
outlet) and ``v`` is ``u`` turned a quarter towards increasing rows. Pixel coordinates are
continuous ``(row, col)`` with the raster's top-left corner at ``(0, 0)``, so pixel ``(i, j)``
has its centre at ``(i + 0.5, j + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon


@dataclass(frozen=True)
class PixelBox:
    """Half-open pixel window ``rows [row0, row1)``, ``cols [col0, col1)``."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row0, self.row1), slice(self.col0, self.col1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.row1 - self.row0, self.col1 - self.col0


@dataclass(frozen=True)
class LocalFrame:
    """Per-pixel coordinates of a window in a blob's frame."""

    box: PixelBox
    u: np.ndarray  # along the blob's axis, pixels
    v: np.ndarray  # across it, pixels
    theta: np.ndarray  # atan2(v, u)
    radius: np.ndarray  # r(theta), pixels
    rho: np.ndarray  # distance / r(theta): < 1 inside


@dataclass(frozen=True)
class Blob:
    """An ellipse (semi-axes ``semi_u`` along ``u``, ``semi_v`` across), optionally joined by a
    tapering tongue along ``+u`` (a trapezoid from the centre to ``tongue_length``, half-width
    ``tongue_width[0]`` at the centre and ``tongue_width[1]`` at the tip), the whole radius
    scaled by ``1 + sum a_k cos(k theta + phi_k)``."""

    cy: float
    cx: float
    angle: float  # direction of +u in the image, radians; x = cols, y = rows
    semi_u: float
    semi_v: float
    tongue_length: float = 0.0
    tongue_width: tuple[float, float] = (0.0, 0.0)
    harmonics: tuple[tuple[int, float, float], ...] = ()

    def radius(self, theta: np.ndarray) -> np.ndarray:
        c, s = np.cos(theta), np.sin(theta)
        a, b = self.semi_u, self.semi_v
        r = (a * b) / np.sqrt((b * c) ** 2 + (a * s) ** 2)
        if self.tongue_length > 0:
            w0, w1 = self.tongue_width
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                # ray from the centre to the slanted side v = w0 + (w1 - w0) u / L and to the
                # tip u = L; a soft minimum rounds the tip, a soft maximum the waist
                slope = np.abs(s) - (w1 - w0) * c / self.tongue_length
                side = np.where(slope > 0, w0 / slope, np.inf)
                tip = np.where(c > 0, self.tongue_length / c, np.inf)
                tongue = (side**-4.0 + tip**-4.0) ** -0.25
            tongue = np.where(c > 0, np.nan_to_num(tongue, posinf=0.0), 0.0)
            r = (r**6 + tongue**6) ** (1.0 / 6.0)
        if self.harmonics:
            wobble = np.ones_like(r)
            for k, amplitude, phase in self.harmonics:
                wobble += amplitude * np.cos(k * theta + phase)
            r = r * wobble
        return r

    def extent(self) -> float:
        """The largest radius, pixels."""
        return float(self.radius(np.linspace(-np.pi, np.pi, 721)).max())

    def box(self, *, margin: float, height: int, width: int) -> PixelBox:
        """The pixel window covering the blob grown by ``margin`` pixels, clipped to the raster."""
        reach = self.extent() + margin
        return PixelBox(
            row0=max(0, int(np.floor(self.cy - reach))),
            row1=min(height, int(np.ceil(self.cy + reach)) + 1),
            col0=max(0, int(np.floor(self.cx - reach))),
            col1=min(width, int(np.ceil(self.cx + reach)) + 1),
        )

    def fits(self, *, margin: float, height: int, width: int) -> bool:
        """True when the blob grown by ``margin`` lies inside an (H, W) raster."""
        reach = self.extent() + margin
        return (
            self.cy - reach >= 0
            and self.cx - reach >= 0
            and self.cy + reach <= height
            and self.cx + reach <= width
        )

    def frame(self, box: PixelBox, *, stride: int = 1) -> LocalFrame:
        """Blob-frame coordinates of the pixel centres of ``box`` (every ``stride``-th pixel)."""
        rows = np.arange(box.row0, box.row1, stride, dtype=np.float32)[:, None] + 0.5 - self.cy
        cols = np.arange(box.col0, box.col1, stride, dtype=np.float32)[None, :] + 0.5 - self.cx
        ca, sa = np.float32(np.cos(self.angle)), np.float32(np.sin(self.angle))
        u = cols * ca + rows * sa
        v = rows * ca - cols * sa
        theta = np.arctan2(v, u)
        radius = self.radius(theta).astype(np.float32)
        rho = np.hypot(u, v) / radius
        return LocalFrame(box=box, u=u, v=v, theta=theta, radius=radius, rho=rho)

    def outline(self) -> np.ndarray:
        """Vertices ``(n, 2)`` as ``(col, row)``, counter-clockwise in the image, dense enough
        that no edge is longer than about one pixel."""
        n = int(np.clip(2 * np.pi * self.extent() * 1.5, 48, 2048))
        theta = np.linspace(-np.pi, np.pi, n, endpoint=False)
        r = self.radius(theta)
        u, v = r * np.cos(theta), r * np.sin(theta)
        ca, sa = np.cos(self.angle), np.sin(self.angle)
        return np.stack([self.cx + u * ca - v * sa, self.cy + u * sa + v * ca], axis=1)

    def polygon(self) -> Polygon:
        """The outline as a shapely polygon in pixel space (x = col, y = row)."""
        return Polygon(self.outline())


def polygon_mask(polygon: Polygon, box: PixelBox) -> np.ndarray:
    """Pixels of ``box`` whose centres lie inside a pixel-space polygon."""
    rows = np.arange(box.row0, box.row1, dtype=np.float64) + 0.5
    cols = np.arange(box.col0, box.col1, dtype=np.float64) + 0.5
    xx, yy = np.meshgrid(cols, rows)
    shapely.prepare(polygon)
    return shapely.contains_xy(polygon, xx, yy)
