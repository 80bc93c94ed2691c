"""Value noise, fractal sums of it, and a small blur: the textures of the synthetic scenes.

Pure numpy, float32 throughout. Noise cells are given in pixels, so a texture has the same
ground scale whatever the scene size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def _axis_weights(
    n: int, cell: float, offset: float, *, smooth: bool
) -> tuple[np.ndarray, np.ndarray]:
    pos = (np.arange(n, dtype=np.float32) + np.float32(offset)) / np.float32(cell)
    floor = np.floor(pos)
    index, frac = floor.astype(np.int64), pos - floor
    if smooth:  # smoothstep: no grid-aligned creases in the noise
        frac = frac * frac * (3.0 - 2.0 * frac)
    return index, frac


def _interpolate(
    grid: np.ndarray,
    *,
    height: int,
    width: int,
    cell: float,
    offset: tuple[float, float],
    smooth: bool,
) -> np.ndarray:
    """Sample ``grid`` (one value per ``cell`` pixels) at every pixel of an (H, W) raster."""
    iy, fy = _axis_weights(height, cell, offset[0], smooth=smooth)
    ix, fx = _axis_weights(width, cell, offset[1], smooth=smooth)
    rows = grid[iy] * (1.0 - fy)[:, None] + grid[iy + 1] * fy[:, None]  # (H, grid_w)
    return rows[:, ix] * (1.0 - fx) + rows[:, ix + 1] * fx


def value_noise(rng: np.random.Generator, *, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth noise in [-1, 1] with features about ``cell`` pixels across, shape (H, W)."""
    grid_h, grid_w = int(height / cell) + 3, int(width / cell) + 3
    grid = rng.random((grid_h, grid_w), dtype=np.float32) * 2.0 - 1.0
    oy, ox = rng.random(2) * cell
    return _interpolate(grid, height=height, width=width, cell=cell, offset=(oy, ox), smooth=True)


@dataclass(frozen=True)
class CoarseField:
    """A field held on a grid ``step`` times coarser than the (H, W) raster it describes."""

    grid: np.ndarray
    step: int
    height: int
    width: int

    def resample(self) -> np.ndarray:
        """Bilinear samples at every pixel of the (H, W) raster."""
        if self.step == 1:
            return self.grid[: self.height, : self.width]
        return _interpolate(
            self.grid,
            height=self.height,
            width=self.width,
            cell=self.step,
            offset=(0.0, 0.0),
            smooth=False,
        )

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> CoarseField:
        """The field with ``fn`` applied on the coarse grid (cheap; smooth results stay smooth)."""
        return CoarseField(fn(self.grid), self.step, self.height, self.width)


def fbm_field(
    rng: np.random.Generator,
    *,
    height: int,
    width: int,
    cells: Sequence[float],
    gain: float = 0.55,
) -> CoarseField:
    """Fractal sum of value noise octaves (coarsest first), normalised to about [-1, 1].

    The octaves are summed on a grid ``step`` times coarser than the raster (the finest cell
    still spans four grid pixels), which keeps large scenes fast.
    """
    step = max(1, int(min(cells) // 4))
    low_h, low_w = height // step + 2, width // step + 2
    out = np.zeros((low_h, low_w), dtype=np.float32)
    amplitude, total = 1.0, 0.0
    for cell in cells:
        noise = value_noise(rng, height=low_h, width=low_w, cell=cell / step)
        out += np.float32(amplitude) * noise
        total += amplitude
        amplitude *= gain
    out /= np.float32(total)
    return CoarseField(out, step, height, width)


def fbm(
    rng: np.random.Generator,
    *,
    height: int,
    width: int,
    cells: Sequence[float],
    gain: float = 0.55,
) -> np.ndarray:
    """:func:`fbm_field` sampled at every pixel, shape (H, W)."""
    return fbm_field(rng, height=height, width=width, cells=cells, gain=gain).resample()


def blur121(image: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur over the last two axes, edges replicated."""
    rows = image * np.float32(2.0)
    rows[..., 1:, :] += image[..., :-1, :]
    rows[..., :-1, :] += image[..., 1:, :]
    rows[..., 0, :] += image[..., 0, :]
    rows[..., -1, :] += image[..., -1, :]
    out = rows * np.float32(2.0)
    out[..., 1:] += rows[..., :-1]
    out[..., :-1] += rows[..., 1:]
    out[..., 0] += rows[..., 0]
    out[..., -1] += rows[..., -1]
    out *= np.float32(1.0 / 16.0)
    return out


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, a smooth ramp in between."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
