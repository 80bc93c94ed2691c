"""Writing a synthetic scene to disk: the image as a GeoTIFF, the truth as a GeoPackage."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilecast.demo.scene import SyntheticScene
from tilecast.io.raster import Georef, write_raster
from tilecast.io.vector import write_polygons


@dataclass(frozen=True)
class ScenePaths:
    """Where :func:`write_scene` put a scene."""

    image: Path  # scene.tif: 3-band uint8 RGB, NoData 0
    truth: Path  # truth.gpkg: slump polygons with a slump_id field


def write_scene(scene: SyntheticScene, directory: str | os.PathLike[str]) -> ScenePaths:
    """Write ``scene.tif`` and ``truth.gpkg`` into ``directory`` (created if missing)."""
    root = Path(directory)
    paths = ScenePaths(image=root / "scene.tif", truth=root / "truth.gpkg")
    write_raster(
        paths.image,
        scene.image,
        georef=Georef(crs=scene.crs, transform=scene.transform),
        nodata=scene.nodata,
        band_descriptions=["R", "G", "B"],
    )
    write_polygons(
        paths.truth,
        scene.slumps,
        crs=scene.crs,
        attributes={"slump_id": list(range(1, len(scene.slumps) + 1))},
        layer="slumps",
    )
    return paths


def write_quads(
    scene: SyntheticScene, directory: str | os.PathLike[str], *, quad_size: int
) -> list[Path]:
    """Cut the scene into ``quad_size`` COG quads (``quad_R_C.tif``), like a basemap delivery.

    Quads that would hold no valid pixel are not written (a basemap has holes).
    """
    from affine import Affine

    from tilecast.io.raster import write_cog

    root = Path(directory)
    written = []
    for row in range(0, scene.height, quad_size):
        for col in range(0, scene.width, quad_size):
            part = scene.image[:, row : row + quad_size, col : col + quad_size]
            if not (part != scene.nodata).any():
                continue
            x, y = scene.transform * (col, row)
            path = root / f"quad_{row // quad_size}_{col // quad_size}.tif"
            t = scene.transform
            write_cog(
                path,
                np.ascontiguousarray(part),
                georef=Georef(crs=scene.crs, transform=Affine(t.a, 0.0, x, 0.0, t.e, y)),
                nodata=scene.nodata,
                channel_order="RGB",
            )
            written.append(path)
    return written
