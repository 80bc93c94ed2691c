"""Resize-policy geometry: which size an image is resized to and which window is kept.

Pure integer arithmetic, no arrays: a plan is computed from the input's size and the policy
the model was trained with, then executed by :func:`tilecast.prep.resize.resize_image`. The
rounding follows torchvision's ``Resize(int)`` (the long side truncated) and ``CenterCrop``
(offsets rounded half to even), the transforms most classifiers are trained with.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilecast.errors import InputError

__all__ = ["ResizePlan", "Size", "fixed_size_plan", "shorter_side_plan"]


@dataclass(frozen=True)
class Size:
    """A raster size in pixels; ``.hw`` is (height, width), the order torch expects."""

    height: int
    width: int

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise InputError(f"a size must be positive, {self.height} x {self.width} is given")

    @property
    def hw(self) -> tuple[int, int]:
        return self.height, self.width

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class ResizePlan:
    """Resize ``source`` to ``resized``, then keep ``crop`` whose top-left is ``offset_yx``."""

    source: Size
    resized: Size
    offset_yx: tuple[int, int]
    crop: Size

    @property
    def output(self) -> Size:
        return self.crop

    @property
    def resamples(self) -> bool:
        return self.resized != self.source

    @property
    def crops(self) -> bool:
        return self.crop != self.resized


def fixed_size_plan(source: Size, size: Size) -> ResizePlan:
    """Resize to ``size`` exactly (the aspect ratio is not kept), no crop."""
    return ResizePlan(source=source, resized=size, offset_yx=(0, 0), crop=size)


def shorter_side_plan(source: Size, *, shorter_side: int, crop: Size) -> ResizePlan:
    """Resize so the shorter side is ``shorter_side`` (aspect kept), then crop the centre."""
    if crop.height > shorter_side or crop.width > shorter_side:
        raise InputError(
            f"a centre crop of {crop} does not fit in a shorter side of {shorter_side} px"
        )
    short, long = sorted((source.height, source.width))
    long_resized = int(shorter_side * long / short)
    if source.height <= source.width:
        resized = Size(shorter_side, long_resized)
    else:
        resized = Size(long_resized, shorter_side)
    top = round((resized.height - crop.height) / 2.0)
    left = round((resized.width - crop.width) / 2.0)
    return ResizePlan(source=source, resized=resized, offset_yx=(top, left), crop=crop)
