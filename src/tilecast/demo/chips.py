"""Synthetic image chips for the demo classifier: slump, lake, river or tundra.

A chip is a small RGB patch painted like a crop of a demo scene (:mod:`tilecast.demo.scene`
paints its tundra, water and slumps; its palette and painters are reused here), aimed at one
label. Its label is not the aim but what the pixels show: :func:`dominant_label` reads it from
the chip's visible cover (which pixels are slump, lake or river after every layer is painted),
and a draw whose cover says otherwise is redrawn. So a chip's label is decidable from its
pixels, by a rule a test can check.

Look-alikes make the task honest: tundra chips carry bright bare patches, dark wet patches and
slump-brown peat patches without a headwall, sometimes the corner of a lake or a narrow stream
too small to dominate; slump chips sometimes have water beside the outlet.

Pure numpy, no file I/O, deterministic for a seed: one ``numpy.random.Generator`` per chip,
seeded with the chip's seed, draws every attempt in turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

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
from tilecast.demo.noise import blur121
from tilecast.demo.shapes import Blob, PixelBox, polygon_mask
from tilecast.errors import InputError

Label = Literal["slump", "lake", "river", "tundra"]
LABELS: tuple[Label, ...] = ("slump", "lake", "river", "tundra")
FEATURES: tuple[Label, ...] = ("slump", "lake", "river")  # the layers of a chip's cover
CHIP_SIDE = 64  # pixels, 192 m at the scenes' 3 m
DOMINANT_FRACTION = 0.15
"""A feature dominates a chip when it covers at least this fraction of it and more than any
other feature; a chip that no feature dominates is tundra."""
MAX_ATTEMPTS = 200

# First seeds of the demo's three disjoint splits: chip ``i`` of a split has seed ``first + i``.
# The validation chips calibrate the threshold; the test chips are never used in training.
SPLIT_SEEDS = {"train": 100_000, "validation": 200_000, "test": 300_000}
SPLIT_SIZE_LIMIT = 100_000


@dataclass(frozen=True, eq=False)
class SyntheticChip:
    """One chip (``eq=False``: arrays do not compare as one bool)."""

    image: np.ndarray  # (3, S, S) uint8 RGB, values 1..255
    cover: np.ndarray  # (3, S, S) bool: visible slump, lake, river pixels (FEATURES order)
    label: Label
    seed: int

    @property
    def fractions(self) -> dict[str, float]:
        """The fraction of the chip each feature covers."""
        return {name: float(self.cover[i].mean()) for i, name in enumerate(FEATURES)}


def dominant_label(cover: np.ndarray) -> Label:
    """The feature that covers the most of a chip if it covers at least
    :data:`DOMINANT_FRACTION`, else ``tundra``; ties go to the earlier feature."""
    fractions = cover.reshape(len(FEATURES), -1).mean(axis=1)
    best = int(np.argmax(fractions))
    return FEATURES[best] if fractions[best] >= DOMINANT_FRACTION else "tundra"


def generate_chip(*, seed: int, label: Label, side: int = CHIP_SIDE) -> SyntheticChip:
    """Paint a chip whose cover is dominated by ``label`` (or by nothing, for ``tundra``)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, {seed!r} is given")
    if label not in LABELS:
        raise InputError(f"label must be one of {', '.join(LABELS)}, {label!r} is given")
    if isinstance(side, bool) or not isinstance(side, int) or side < 32:
        raise InputError(f"side must be an integer >= 32, {side!r} is given")
    rng = np.random.default_rng(int(seed))
    for _ in range(MAX_ATTEMPTS):
        image, cover = _paint(rng, label, side)
        if dominant_label(cover) == label:
            return SyntheticChip(image=image, cover=cover, label=label, seed=int(seed))
    raise InputError(  # not reached for the painters below; a guard against an endless loop
        f"no {label} chip in {MAX_ATTEMPTS} attempts for seed {seed}"
    )


def split_chips(
    split: Literal["train", "validation", "test"], count: int, *, side: int = CHIP_SIDE
) -> Iterator[SyntheticChip]:
    """The first ``count`` chips of a split, labels in turn (slump, lake, river, tundra, ...)."""
    if split not in SPLIT_SEEDS:
        raise InputError(f"split must be one of {', '.join(SPLIT_SEEDS)}, {split!r} is given")
    if not 0 <= count <= SPLIT_SIZE_LIMIT:
        raise InputError(f"count must be between 0 and {SPLIT_SIZE_LIMIT}, {count} is given")
    first = SPLIT_SEEDS[split]
    for i in range(count):
        yield generate_chip(seed=first + i, label=LABELS[i % len(LABELS)], side=side)


# --- painting --------------------------------------------------------------------------------


def _paint(rng: np.random.Generator, label: Label, side: int) -> tuple[np.ndarray, np.ndarray]:
    canvas = paint_terrain(rng, height=side, width=side)
    cover = np.zeros((len(FEATURES), side, side), dtype=bool)
    _look_alikes(rng, canvas, count=int(rng.integers(0, 3 if label == "tundra" else 2)))
    if label == "lake":
        _lake(rng, canvas, cover, reach=(0.3, 1.1))
    elif label == "river":
        _stream(rng, canvas, cover, half=(4.5, 10.0))
    elif label == "slump":
        water = rng.random()
        if water < 0.2:
            _lake(rng, canvas, cover, reach=(1.0, 1.4))
        elif water < 0.35:
            _stream(rng, canvas, cover, half=(1.2, 2.5))
        _slump(rng, canvas, cover)
    else:
        if rng.random() < 0.6:  # slump-brown bare peat, no headwall: the look-alike to beat
            _patch(rng, canvas, as_rgb(FLOOR), size=(8.0, 20.0), opacity=(0.6, 0.9))
        extra = rng.random()
        if extra < 0.2:
            _lake(rng, canvas, cover, reach=(1.05, 1.4))
        elif extra < 0.4:
            _stream(rng, canvas, cover, half=(1.0, 2.0))
    gain = np.float32(rng.uniform(0.9, 1.1))
    rgb = blur121(canvas.rgb * gain)
    rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(1.6)
    return np.clip(np.rint(rgb), 1, 255).astype(np.uint8), cover


def _visible(cover: np.ndarray, index: int, mask: np.ndarray, box: PixelBox) -> None:
    """``mask`` (pixels of ``box``) is now feature ``index``, painted over the others."""
    window = cover[(slice(None), *box.slices)]
    window[:, mask] = False
    window[index][mask] = True


def _lake(
    rng: np.random.Generator,
    canvas: Canvas,
    cover: np.ndarray,
    *,
    reach: tuple[float, float],
) -> None:
    """A thermokarst lake whose centre lies ``reach`` x its radius from the chip centre
    (below 1: the chip centre is in the lake; above 1: only the shore reaches in)."""
    side = canvas.height
    semi = log_uniform(rng, 0.5 * side, 1.6 * side)
    lake = Blob(
        cy=0.0,
        cx=0.0,
        angle=float(rng.uniform(0, np.pi)),
        semi_u=semi * float(rng.uniform(1.0, 1.6)),
        semi_v=semi,
        harmonics=outline_harmonics(rng, strength=0.25),
    )
    direction = float(rng.uniform(-np.pi, np.pi))
    offset = float(lake.radius(np.array([direction - lake.angle]))[0]) * rng.uniform(*reach)
    lake = Blob(
        cy=side / 2 - np.sin(direction) * offset,
        cx=side / 2 - np.cos(direction) * offset,
        angle=lake.angle,
        semi_u=lake.semi_u,
        semi_v=lake.semi_v,
        harmonics=lake.harmonics,
    )
    box = lake.box(margin=6, height=side, width=side)
    if box.shape[0] <= 0 or box.shape[1] <= 0:
        return
    frame = lake.frame(box)
    inside_px = (1.0 - frame.rho) * frame.radius
    alpha = np.clip(inside_px + 0.5, 0.0, 1.0)
    depth = np.clip(inside_px / float(rng.uniform(4, 14)), 0.0, 1.0)
    deep, shallow = as_rgb(WATER_DEEP), as_rgb(WATER_SHALLOW)
    canvas.blend(box, shallow[:, None, None] + depth[None] * (deep - shallow)[:, None, None], alpha)
    _visible(cover, FEATURES.index("lake"), alpha >= 0.5, box)


def _stream(
    rng: np.random.Generator,
    canvas: Canvas,
    cover: np.ndarray,
    *,
    half: tuple[float, float],
) -> None:
    """A river crossing the chip, ``half`` = its half-width range in pixels, sand bars aside."""
    side = canvas.height
    path = river_path(rng, side, side)
    if len(path) < 8:
        return
    width = float(rng.uniform(*half))
    if rng.random() < 0.5:  # a sand bar on one bank, painted first: the water covers its edge
        i = int(rng.integers(1, len(path) - 1))
        bar = sand_bar(rng, path, i, half_width=width, sizes=(2.5, 6.0))
        paint_patch(canvas, bar, as_rgb(SAND), opacity=0.85, avoid=False)
    dist = distance_to_path(path, int(width) + 6, side, side)
    box = PixelBox(0, side, 0, side)
    alpha = np.clip(width + 0.5 - dist, 0.0, 1.0)
    canvas.blend(box, as_rgb(RIVER), alpha)
    _visible(cover, FEATURES.index("river"), alpha >= 0.5, box)


def _slump(rng: np.random.Generator, canvas: Canvas, cover: np.ndarray) -> None:
    """A slump of 30 to 90 px (90 to 270 m), its bowl near the chip centre, outlet anywhere."""
    side = canvas.height
    shape = slump_shape(rng, float(rng.uniform(0.5, 1.4)) * side)
    angle = float(rng.uniform(0, 2 * np.pi))
    # shift the centre against the outlet so the headwall and the floor both stay in view
    back = 0.3 * shape.reach_down
    jitter = rng.uniform(-0.1, 0.1, 2) * side
    blob = Blob(
        cy=float(side / 2 - np.sin(angle) * back + jitter[0]),
        cx=float(side / 2 - np.cos(angle) * back + jitter[1]),
        angle=angle,
        semi_u=shape.semi_u,
        semi_v=shape.semi_v,
        tongue_length=shape.tongue_length,
        tongue_width=shape.tongue_width,
        harmonics=outline_harmonics(rng, strength=0.08, orders=range(2, 9)),
    )
    box = blob.box(margin=4, height=side, width=side)
    paint_slump(rng, canvas, blob, blob.frame(box))
    _visible(cover, FEATURES.index("slump"), polygon_mask(blob.polygon(), box), box)


def _look_alikes(rng: np.random.Generator, canvas: Canvas, *, count: int) -> None:
    """Bright bare patches and dark wet patches, as in the scenes."""
    for _ in range(count):
        if rng.random() < 0.5:
            tint = as_rgb(SAND) + rng.normal(0, 8, 3).astype(np.float32)
            _patch(rng, canvas, tint, size=(3.0, 10.0), opacity=(0.5, 0.9))
        else:
            _patch(rng, canvas, as_rgb(WET), size=(6.0, 20.0), opacity=(0.4, 0.8))


def _patch(
    rng: np.random.Generator,
    canvas: Canvas,
    colour: np.ndarray,
    *,
    size: tuple[float, float],
    opacity: tuple[float, float],
) -> None:
    radius = log_uniform(rng, *size)
    blob = Blob(
        cy=float(rng.uniform(0, canvas.height)),
        cx=float(rng.uniform(0, canvas.width)),
        angle=float(rng.uniform(0, 2 * np.pi)),
        semi_u=radius * float(rng.uniform(1.0, 2.0)),
        semi_v=radius,
        harmonics=outline_harmonics(rng, strength=0.3),
    )
    paint_patch(canvas, blob, colour, opacity=float(rng.uniform(*opacity)), avoid=False)
