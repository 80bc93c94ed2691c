"""A request body to a prepared image: decoded in memory, checked, the contract's host steps.

The same steps, in the same order, as ``tilecast predict`` and ``tilecast classify`` take on
a file: :func:`tilecast.io.raster.decode_raster` (what ``read_raster`` does on bytes), the
channel order from the file, then :func:`tilecast.bundle.runtime.prepare`. Whatever is wrong
with the image is a :class:`RequestError` 422 naming ``image``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilecast.bundle import Bundle
from tilecast.bundle.runtime import Prepared
from tilecast.drift import DriftMonitor, DriftVerdict
from tilecast.errors import InputDriftError, InputError
from tilecast.io.raster import RasterImage, decode_raster
from tilecast.predict.reference import prepare_raster
from tilecast.serve.errors import RequestError

IMAGE_TYPES = ("image/png", "image/jpeg", "image/tiff", "application/octet-stream")


@dataclass(frozen=True)
class Decoded:
    """One request's image as read, its channel order, and what the model program takes."""

    name: str
    image: RasterImage
    order: str
    prepared: Prepared
    drift: DriftVerdict | None = None  # this image's valid pixels against training


def decode_image(
    bundle: Bundle,
    data: bytes,
    *,
    name: str,
    max_pixels: int,
    drift: DriftMonitor | None = None,
) -> Decoded:
    """Decode and prepare one image file's bytes; RequestError 422 (``image``) when it is bad.

    With ``drift``, the image's valid pixels are judged against training on their own (the
    verdict goes with the answer, as ``tilecast predict`` tags it) and added to the service's
    running statistics (``/health``); in ``fail`` mode a flagged image is a 422 instead.
    """
    if not data:
        raise RequestError(422, "image", "the body is empty; expected an image file's bytes")
    try:
        image = decode_raster(data, name=name)
    except InputError as exc:
        raise RequestError(422, "image", str(exc)) from None
    _, height, width = image.shape
    if height * width > max_pixels:
        raise RequestError(
            422,
            "image",
            f"{width} x {height} px is more than the {max_pixels} px an image may have here",
        )
    try:
        order, prepared = prepare_raster(bundle, image, channel_order=None)
    except InputError as exc:
        raise RequestError(422, "image", f"{name}: {exc}") from None
    verdict = None
    if drift is not None:
        try:
            verdict = drift.observe_alone(image.array, prepared.valid, channel_order=order)
        except InputDriftError as exc:
            raise RequestError(422, "image", f"{name}: {exc}") from None
    return Decoded(name=name, image=image, order=order, prepared=prepared, drift=verdict)
