"""Multi-scale contexts, exactly as the run book defines them.

For a square tile of ``tile_size`` pixels and a scale ``s`` in (0, 1]:

1. read a ``tile_size / s`` pixel square *context* centred on the tile
   (:func:`context_window`; offset ``-(context - tile) / 2`` on each axis);
2. downsample it to ``tile_size`` (the model always sees ``model_size = tile_size``);
3. infer, upsample the prediction back to the context size;
4. crop the centre ``tile_size`` square (:func:`crop_back_window`).

Both the context size and the centring offset must be whole pixels, so ``tile_size / s``
must be an integer and ``tile_size / s - tile_size`` even; anything else is refused rather
than rounded. The scale is taken as the decimal number it prints as (``0.4`` is 2/5, not the
nearest binary float), so ``512 / 0.4 = 1280`` is accepted and ``512 / 0.3`` is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from tilecast.errors import InputError
from tilecast.grid.windows import Window, as_positive_int

__all__ = ["ScaleView", "context_size", "context_window", "crop_back_window", "scale_views"]


def _scale(value: object) -> float:
    if isinstance(value, bool):
        raise InputError(f"scale must be a number in (0, 1], {value!r} is given")
    try:
        scale = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"scale must be a number in (0, 1], {value!r} is given") from None
    if not (math.isfinite(scale) and 0 < scale <= 1):
        raise InputError(f"scale must be in (0, 1], {value!r} is given")
    return scale


def context_size(tile_size: int, scale: float) -> int:
    """The side of the context read for ``scale``: ``tile_size / scale``, a whole number.

    ``context_size(512, 1.0) == 512``, ``(512, 0.5) == 1024``, ``(512, 0.25) == 2048``.
    Raises :class:`InputError` unless ``tile_size / scale`` is an integer whose difference
    from ``tile_size`` is even (so the tile sits at a whole-pixel offset in the centre).
    """
    size = as_positive_int("tile_size", tile_size)
    s = _scale(scale)
    exact = Fraction(size) / Fraction(repr(s))
    if exact.denominator != 1 or (exact.numerator - size) % 2:
        raise InputError(
            f"scale {s!r} gives a {float(exact):.6g} px context for a {size} px tile; choose a "
            f"scale where tile_size/scale is an integer with an even difference from tile_size"
        )
    return exact.numerator


def context_window(tile: Window, scale: float) -> Window:
    """The ``context_size`` square centred on the (square) ``tile``, in the same grid."""
    if tile.height != tile.width or tile.is_empty:
        raise InputError(f"a scale context needs a square, non-empty tile, {tile} is given")
    side = context_size(tile.height, scale)
    return tile.centered(side, side)


def crop_back_window(tile_size: int, scale: float) -> Window:
    """Where the tile lies inside its ``context_size`` x ``context_size`` context.

    Offsets are 0, 256 and 768 for a 512 px tile at scales 1, 0.5 and 0.25: after the
    prediction is upsampled back to the context, this window crops the tile out of it.
    """
    size = as_positive_int("tile_size", tile_size)
    offset = (context_size(size, scale) - size) // 2
    return Window(offset, offset, size, size)


@dataclass(frozen=True)
class ScaleView:
    """One scale of one tile: the context read from the source and the size the model sees."""

    scale: float
    context: Window
    model_size: int

    @property
    def context_size(self) -> int:
        return self.context.height

    @property
    def crop_back(self) -> Window:
        """The tile inside the context upsampled back to :attr:`context_size`."""
        return crop_back_window(self.model_size, self.scale)

    @property
    def is_identity(self) -> bool:
        """Scale 1: the context is the tile, no resampling."""
        return self.context.height == self.model_size


def scale_views(tile: Window, scales: Sequence[float]) -> tuple[ScaleView, ...]:
    """The views of ``tile`` at each of ``scales``, in the given order.

    ``scales`` must be non-empty and free of repeats (a repeat would only double the work).
    """
    if isinstance(scales, str | bytes) or len(scales) == 0:
        raise InputError(f"scales must be a non-empty sequence of numbers, {scales!r} is given")
    values = [_scale(s) for s in scales]
    repeated = sorted({s for s in values if values.count(s) > 1})
    if repeated:
        raise InputError(
            f"scales must not repeat; {repeated} appear more than once in {list(scales)}"
        )
    return tuple(
        ScaleView(scale=s, context=context_window(tile, s), model_size=tile.height) for s in values
    )
