"""Value noise, fractal sums of it, and a small blur: the textures of the synthetic scenes.

Pure numpy, float32 throughout. Noise cells are given in pixels, so a texture has the same
ground scale whatever the scene size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _axis_weights(n: int, cell: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    pos = (np.arange(n, dtype=np.float32) + np.float32(offset)) / np.float32(cell)
    index = pos.astype(np.int64)
    frac = pos - index
    return index, frac * frac * (3.0 - 2.0 * frac)  # smoothstep: no grid-aligned creases


def value_noise(rng: np.random.Generator, *, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth noise in [-1, 1] with features about ``cell`` pixels across, shape (H, W)."""
    grid_h, grid_w = int(height / cell) + 3, int(width / cell) + 3
    grid = rng.random((grid_h, grid_w), dtype=np.float32) * 2.0 - 1.0
    oy, ox = rng.random(2) * cell
    iy, fy = _axis_weights(height, cell, oy)
    ix, fx = _axis_weights(width, cell, ox)
    rows = grid[iy] * (1.0 - fy)[:, None] + grid[iy + 1] * fy[:, None]  # (H, grid_w)
    return rows[:, ix] * (1.0 - fx) + rows[:, ix + 1] * fx


def fbm(
    rng: np.random.Generator,
    *,
    height: int,
    width: int,
    cells: Sequence[float],
    gain: float = 0.55,
) -> np.ndarray:
    """Fractal sum of value noise octaves (coarsest first), normalised to about [-1, 1]."""
    out = np.zeros((height, width), dtype=np.float32)
    amplitude, total = 1.0, 0.0
    for cell in cells:
        out += np.float32(amplitude) * value_noise(rng, height=height, width=width, cell=cell)
        total += amplitude
        amplitude *= gain
    out /= np.float32(total)
    return out


def blur121(image: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur over the last two axes, edges replicated."""
    padded = np.pad(image, [(0, 0)] * (image.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    rows = (padded[..., :-2, :] + 2.0 * padded[..., 1:-1, :] + padded[..., 2:, :]) * 0.25
    return (rows[..., :-2] + 2.0 * rows[..., 1:-1] + rows[..., 2:]) * 0.25


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, a smooth ramp in between."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
