"""Raster -> polygons with attributes -> GeoPackage (``vectors/rts_predictions.gpkg``).

``polygonize`` streams 8-connected objects out of a binary mosaic block by block;
``attributes`` measures them (geodesic area and perimeter, WGS84 centroid, probability
statistics, winning scales, detecting tiles); ``job`` runs a region or a whole run output and
writes the layer. Files are opened only through ``tilecast.io``.
"""

from tilecast.vector.attributes import PolygonRecord, geodesic_area_perimeter
from tilecast.vector.job import (
    LAYER,
    PREDICTIONS_PATH,
    TileIndexEntry,
    VectorizeResult,
    read_tile_index,
    vectorize_output,
    vectorize_region,
    write_predictions,
)
from tilecast.vector.polygonize import polygonize_blocks

__all__ = [
    "LAYER",
    "PREDICTIONS_PATH",
    "PolygonRecord",
    "TileIndexEntry",
    "VectorizeResult",
    "geodesic_area_perimeter",
    "polygonize_blocks",
    "read_tile_index",
    "vectorize_output",
    "vectorize_region",
    "write_predictions",
]
