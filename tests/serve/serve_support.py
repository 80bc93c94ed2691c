"""Images and models for the service tests: georeferenced noise, PNG colours, a gated model."""

from __future__ import annotations

import threading

import numpy as np
import torch
from affine import Affine

from tilecast.io.raster import Georef, encode_gtiff

RTS_GEOREF = Georef(crs="EPSG:3413", transform=Affine(3.0, 0, -2_000_000.0, 0, -3.0, 500_000.0))


def noise_tif(
    seed: int, *, size: int = 64, channels: int = 3, georef: Georef = RTS_GEOREF
) -> bytes:
    """A uint8 GeoTIFF of seeded noise, one seed per distinct image."""
    pixels = np.random.default_rng(seed).integers(0, 256, (channels, size, size), dtype=np.uint8)
    return encode_gtiff(
        pixels, georef=georef, nodata=None, channel_order="RGB" if channels == 3 else "L"
    )


def colour_png(rgb: tuple[int, int, int], *, height: int, width: int, seed: int = 0) -> bytes:
    """An RGB PNG of one colour with a little seeded noise (distinct images, same label)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.asarray(rgb) + rng.integers(-15, 16, (height, width, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


class GatedModel:
    """The model, held at a gate: ``started`` is set when a call arrives, the call waits for
    ``release`` (so a test knows the worker is busy)."""

    def __init__(self, model) -> None:
        self.model = model
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.started.set()
        assert self.release.wait(30), "the gate was never opened"
        return self.model(x)


def client_for(app):
    """FastAPI's TestClient (its import warns about httpx; not ours to fix)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    return TestClient(app)
