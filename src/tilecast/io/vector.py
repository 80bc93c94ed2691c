"""Reading and writing polygon layers (GeoPackage) through pyogrio/geopandas.

Writes are atomic: the layer is written to a temporary local file and moved into place (or
uploaded with one PUT to an object store), so a reader sees the old file or the whole new one.
Reads of a GeoPackage on an object store fetch the whole file once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
from shapely.geometry.base import BaseGeometry

from tilecast.errors import InputError, StorageError
from tilecast.io.storage import atomic_local_path, is_local, local_path, read_bytes


def write_polygons(
    uri: str | os.PathLike[str],
    geometries: Sequence[BaseGeometry],
    *,
    crs: str,
    attributes: Mapping[str, Sequence] | None = None,
    layer: str | None = None,
) -> None:
    """Write polygons and their attribute columns as a GeoPackage, atomically.

    Every attribute column must have one value per geometry. An empty layer is written with
    its columns (GeoPackage keeps the schema).
    """
    attributes = dict(attributes or {})
    count = len(geometries)
    for name, values in attributes.items():
        if len(values) != count:
            raise InputError(
                f"attribute {name!r} must have one value per geometry ({count}), "
                f"{len(values)} are given"
            )
        if name == "geometry":
            raise InputError("attribute name 'geometry' is reserved for the geometry column")
    frame = gpd.GeoDataFrame(
        {name: list(values) for name, values in attributes.items()},
        geometry=list(geometries),
        crs=crs,
    )
    text = os.fspath(uri)
    with atomic_local_path(uri, suffix=".gpkg") as tmp:
        tmp.unlink()  # the GeoPackage driver creates the file itself
        try:
            frame.to_file(
                tmp,
                driver="GPKG",
                layer=layer or os.path.splitext(os.path.basename(text))[0],
                engine="pyogrio",
            )
        except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise StorageError(f"{text}: cannot write a GeoPackage ({exc})") from exc


@contextlib.contextmanager
def _readable(uri: str | os.PathLike[str]) -> Iterator[str]:
    """A local path holding ``uri``: the path itself, or a temporary copy of a remote object.

    A GeoPackage is an SQLite database, read with many small random reads; one GET of the
    whole file is faster than ranged requests through GDAL's network file systems.
    """
    text = os.fspath(uri)
    if is_local(text):
        yield str(local_path(text))
        return
    fd, name = tempfile.mkstemp(prefix=".read-", suffix=os.path.splitext(text)[1] or ".gpkg")
    os.close(fd)
    try:
        Path(name).write_bytes(read_bytes(text))
        yield name
    finally:
        Path(name).unlink(missing_ok=True)


def read_polygons(uri: str | os.PathLike[str], *, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a polygon layer (the first one unless ``layer`` is named), local or on a store."""
    text = os.fspath(uri)
    with _readable(text) as path:
        try:
            return gpd.read_file(path, layer=layer, engine="pyogrio")
        except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise StorageError(f"{text}: cannot read as a vector layer ({exc})") from exc


def list_layers(uri: str | os.PathLike[str]) -> list[str]:
    """The layer names of a vector file, local or on a store."""
    text = os.fspath(uri)
    with _readable(text) as path:
        try:
            return [str(row[0]) for row in pyogrio.list_layers(path)]
        except (OSError, pyogrio.errors.DataSourceError) as exc:
            raise StorageError(f"{text}: cannot read as a GeoPackage ({exc})") from exc


#: Column types :func:`write_polygon_layer` accepts, and the GeoPackage field each becomes.
LAYER_DTYPES = {"int64": "Integer64", "float64": "Real", "str": "String"}


def write_polygon_layer(
    uri: str | os.PathLike[str],
    geometries: Sequence[BaseGeometry],
    *,
    crs: str,
    columns: Mapping[str, tuple[str, Sequence]],
    layer: str,
    geometry_type: str = "MultiPolygon",
) -> None:
    """Write a GeoPackage layer with a declared schema, atomically.

    ``columns`` maps each field name to ``(dtype, values)`` with dtype one of
    :data:`LAYER_DTYPES`, so the field types and the layer's ``geometry_type`` are the same
    whether the layer holds many features or none (an empty layer keeps its schema).
    """
    count = len(geometries)
    data: dict[str, pd.Series] = {}
    for name, (dtype, values) in columns.items():
        if name == "geometry":
            raise InputError("column name 'geometry' is reserved for the geometry column")
        if dtype not in LAYER_DTYPES:
            raise InputError(
                f"column {name!r}: dtype must be one of {sorted(LAYER_DTYPES)}, {dtype!r} is given"
            )
        if len(values) != count:
            raise InputError(
                f"column {name!r} must have one value per geometry ({count}), "
                f"{len(values)} are given"
            )
        data[name] = pd.Series(list(values), dtype=object if dtype == "str" else dtype)
    frame = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(list(geometries), crs=crs), crs=crs)
    text = os.fspath(uri)
    with atomic_local_path(uri, suffix=".gpkg") as tmp:
        tmp.unlink()  # the GeoPackage driver creates the file itself
        try:
            pyogrio.write_dataframe(
                frame, tmp, layer=layer, driver="GPKG", geometry_type=geometry_type
            )
        except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise StorageError(f"{text}: cannot write a GeoPackage ({exc})") from exc
