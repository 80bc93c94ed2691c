"""The run's polygons (``vectors/rts_predictions.gpkg``) as the QC report reads them.

:func:`load_polygons` never raises for a missing or unreadable GeoPackage: it says so in a
:class:`~.checks.Check` and returns an empty :class:`Polygons`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tilecast.apps.rts.report.checks import Check
from tilecast.errors import StorageError
from tilecast.io import report_files as files

#: The GeoPackage fields the report expects (a missing one is a warning).
EXPECTED_FIELDS = (
    "rts_id",
    "area_m2",
    "perimeter_m",
    "centroid_lat",
    "centroid_lon",
    "mean_prob",
    "max_prob",
    "detection_scale",
    "tile_ids",
    "region",
)


@dataclass
class Polygons:
    """The GeoPackage's polygons as plain columns (NaN where a field is missing)."""

    frame: Any  # GeoDataFrame (possibly empty); None when unreadable or missing
    crs: str | None
    missing_fields: tuple[str, ...]

    def __len__(self) -> int:
        return 0 if self.frame is None else len(self.frame)

    def column(self, name: str) -> np.ndarray:
        if self.frame is None or name not in self.frame.columns:
            return np.full(len(self), np.nan)
        import pandas as pd

        return pd.to_numeric(self.frame[name], errors="coerce").to_numpy(dtype=float)

    def values(self, name: str) -> list[Any]:
        if self.frame is None or name not in self.frame.columns:
            return [None] * len(self)
        return list(self.frame[name])

    def in_crs(self, crs: str | None) -> Any:
        """The frame in ``crs`` (unchanged when it is already there or when either is unknown)."""
        if self.frame is None or crs is None or self.frame.crs is None:
            return self.frame
        from pyproj import CRS

        if CRS.from_user_input(self.frame.crs) == CRS.from_user_input(crs):
            return self.frame
        return self.frame.to_crs(crs)


def load_polygons(output: str, checks: list[Check]) -> Polygons:
    """The polygons of the run in ``output``; what is wrong with them is appended to ``checks``."""
    try:
        frame = files.read_predictions(output)
    except StorageError as exc:
        checks.append(Check("error", f"{files.PREDICTIONS_PATH} cannot be read: {exc}"))
        return Polygons(None, None, ())
    if frame is None:
        checks.append(Check("error", f"{files.PREDICTIONS_PATH} is missing"))
        return Polygons(None, None, ())
    crs = frame.crs.to_string() if frame.crs is not None else None
    if crs is None:
        checks.append(Check("warn", f"{files.PREDICTIONS_PATH} has no CRS; EPSG:3413 assumed"))
        frame = frame.set_crs("EPSG:3413")
        crs = "EPSG:3413"
    elif frame.crs.to_epsg() != 3413:
        checks.append(Check("warn", f"{files.PREDICTIONS_PATH} is in {crs}, expected EPSG:3413"))
    missing = tuple(f for f in EXPECTED_FIELDS if f not in frame.columns)
    if missing:
        checks.append(
            Check("warn", f"{files.PREDICTIONS_PATH} lacks the field(s) {', '.join(missing)}")
        )
    return Polygons(frame.reset_index(drop=True), crs, missing)
