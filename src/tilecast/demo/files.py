"""Writing a synthetic scene to disk: the image as a GeoTIFF, the truth as a GeoPackage."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
