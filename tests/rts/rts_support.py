"""Builders for the thaw-slump job tests: quad basemaps, echo bundles, configs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import torch
from affine import Affine

from tilecast.apps.rts.config import RtsConfig
from tilecast.bundle import ContractDraft, create_bundle
from tilecast.bundle.contract import InputSpec, Postprocessing
from tilecast.grid import PixelGrid, Tile, make_tile_grid
from tilecast.io.raster import Georef, write_cog

ORIGIN = (-2_400_000.0, -300_000.0)
RES = 3.0


def write_quad_basemap(
    root: Path,
    image: np.ndarray,
    *,
    quad: int,
    nodata: float | None = 0,
    channel_order: str = "RGB",
    valid: np.ndarray | None = None,
    mask_as: Literal["alpha", "internal"] = "alpha",
) -> Path:
    """Cut ``image`` into COG quads under ``root`` (quads with no valid pixel are left out).

    With ``valid`` (an (H, W) bool mask), validity is stored as GDAL stores it besides NoData:
    an alpha band (``mask_as="alpha"``, 255 valid / 0 invalid, colour interpretation alpha)
    or an internal per-dataset mask band (``"internal"``, tiled GeoTIFFs, no NoData value).
    """
    root.mkdir(parents=True, exist_ok=True)
    _, h, w = image.shape
    for r in range(0, h, quad):
        for c in range(0, w, quad):
            part = np.ascontiguousarray(image[:, r : r + quad, c : c + quad])
            part_valid = None if valid is None else valid[r : r + quad, c : c + quad]
            if part_valid is not None and not part_valid.any():
                continue
            if part_valid is None and (part == nodata).all():
                continue
            transform = Affine(RES, 0, ORIGIN[0] + c * RES, 0, -RES, ORIGIN[1] - r * RES)
            path = root / f"quad_{r // quad}_{c // quad}.tif"
            georef = Georef(crs="EPSG:3413", transform=transform)
            if part_valid is not None and mask_as == "internal":
                write_masked_tiff(path, part, georef=georef, valid=part_valid)
                continue
            order = channel_order
            if part_valid is not None:  # alpha
                alpha = np.where(part_valid, 255, 0).astype(part.dtype)
                part, order = np.concatenate([part, alpha[None]]), channel_order + "A"
            write_cog(
                path,
                part,
                georef=georef,
                nodata=nodata,
                channel_order=order,
                blocksize=128,
            )
    return root


def write_masked_tiff(path: Path, data: np.ndarray, *, georef: Georef, valid: np.ndarray) -> None:
    """A tiled RGB GeoTIFF whose validity is an internal per-dataset mask band (no NoData)."""
    count, height, width = data.shape
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=count,
            dtype=data.dtype.name,
            crs=georef.crs,
            transform=georef.transform,
            tiled=True,
            blockxsize=128,
            blockysize=128,
            compress="deflate",
            photometric="RGB",
        ) as dst,
    ):
        dst.write(data)
        dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))


def grid_for(image: np.ndarray) -> PixelGrid:
    _, h, w = image.shape
    return PixelGrid(
        x0=ORIGIN[0], y0=ORIGIN[1], res_x=RES, res_y=RES, width=w, height=h, crs="EPSG:3413"
    )


def tiles_for(image: np.ndarray, *, tile_size: int, stride: int) -> list[Tile]:
    return make_tile_grid(grid_for(image), tile_size=tile_size, stride=stride, region="test")


def smooth_rgb(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(20, 235, size=(3, h // 16 + 2, w // 16 + 2))
    image = np.kron(coarse, np.ones((16, 16)))[:, :h, :w] + rng.normal(0, 6, size=(3, h, w))
    return np.clip(image, 1, 255).astype(np.uint8)


def coordinate_image(h: int, w: int) -> np.ndarray:
    """uint16 RGB: band 1 = row + 1, band 2 = col + 1, band 3 = 1 (0 is NoData)."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows + 1, cols + 1, np.ones_like(rows)]).astype(np.uint16)


COORD_SCALE = 4096.0


class Echo(torch.nn.Module):
    """Returns one input channel / ``scale``: an output pixel says which source pixel it came from."""

    alignment = 32

    def __init__(self, channel: int, scale: float = COORD_SCALE) -> None:
        super().__init__()
        self.channel = channel
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.channel : self.channel + 1] / self.scale


def echo_bundle(
    out: Path,
    *,
    channel: int,
    dtype: str = "uint16",
    input_range: tuple[float, float] = (0, 65535),
    scale: float = COORD_SCALE,
) -> Path:
    """A bundle of :class:`Echo` for 3-band rasters of ``dtype`` (raw values, no normalisation)."""
    draft = ContractDraft(
        name=f"echo-{channel}",
        version="1",
        input=InputSpec(
            channels=3,
            channel_order="RGB",
            dtype=dtype,
            value_scaling="raw",
            input_range=input_range,
        ),
        postprocessing=Postprocessing(activation="none", labels=("coordinate",), threshold=0.5),
    )
    stats = json.dumps(
        {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "dataset_version": "echo"}
    ).encode()
    create_bundle(Echo(channel, scale), draft, stats_bytes=stats, out=out)
    return out


def make_config(
    *, bundle: Path, basemap: Path, out: Path, tile_encoding: str = "float32", **inference: object
) -> RtsConfig:
    """A job config; tiles in float32 unless asked (the tests check exact values in them)."""
    settings = {
        "tile_size": 64,
        "scales": [1.0, 0.5],
        "tta": "minimal",
        "batch_size": 4,
        "workers": 2,
    }
    settings.update(inference)
    return RtsConfig.model_validate(
        {
            "model": {"bundle": str(bundle), "device": "cpu", "precision": "fp32"},
            "input": {"basemap": str(basemap), "basemap_version": "test"},
            "output": {"path": str(out), "tile_encoding": tile_encoding},
            "inference": settings,
        }
    )


def tile_hashes(out: Path) -> dict[str, str]:
    return {
        p.stem: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "tiles").glob("*.tif"))
        if not p.name.startswith(".")  # a killed writer's temporaries are not tiles
    }
