"""The bytes of one scan's write-back: curves.las, curves.json, qc.json and the _SUCCESS marker.

Pure: the same curves, record and provenance always give the same bytes (no clock, no
machine names, keys in a fixed order), so a retried scan rewrites identical objects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.lasfile import (
    DEPTH_MNEMONIC,
    LAS_NULL,
    depth_decimals,
    las_text,
)
from tilecast.apps.welllog.records import ScanRecord

LAYOUT_VERSION = 1
LAS_NAME = "curves.las"
CURVES_NAME = "curves.json"
QC_NAME = "qc.json"
SUCCESS_NAME = "_SUCCESS"
FILE_NAMES = (LAS_NAME, CURVES_NAME, QC_NAME)  # written in this order, _SUCCESS last


@dataclass(frozen=True)
class Provenance:
    """Where the curves came from: the source scan's bytes and the model bundle."""

    source_sha256: str
    width_px: int
    height_px: int
    bundle_digest: str
    model: str  # contract name and version


@dataclass(frozen=True)
class ScanOutputs:
    """Everything committed for one scan, as bytes, plus the curves document for a reply."""

    files: Mapping[str, bytes]  # FILE_NAMES in order
    success: bytes
    curves_document: Mapping[str, Any]


def gap_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index of every run of NaN in a 1-D array."""
    missing = np.isnan(np.asarray(values, dtype=np.float64))
    if not missing.any():
        return []
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def _json_values(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64)]


def _dumps(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, allow_nan=False, separators=(",", ":")) + "\n").encode()


def written_depth(curves: DigitisedCurves) -> np.ndarray:
    """The depth index as written (rounded to the decimals that hold the step exactly)."""
    decimals = depth_decimals(curves.step, float(curves.depth[0]))
    return np.round(np.asarray(curves.depth, dtype=np.float64), decimals)


def curves_document(curves: DigitisedCurves, record: ScanRecord) -> dict[str, Any]:
    """curves.json: the LAS arrays with explicit channel order, depth range and unit."""
    depth = written_depth(curves)
    return {
        "layout_version": LAYOUT_VERSION,
        "uwi": record.uwi,
        "scan_id": record.scan_id,
        "channel_order": [DEPTH_MNEMONIC, *(c.name for c in record.curves)],
        "depth": {
            "mnemonic": DEPTH_MNEMONIC,
            "unit": record.depth_unit,
            "start": float(depth[0]),
            "stop": float(depth[-1]),
            "step": float(round(curves.step, depth_decimals(curves.step, float(depth[0])))),
            "count": int(depth.size),
            "values": [float(d) for d in depth],
        },
        "curves": [
            {
                "name": spec.name,
                "unit": spec.unit,
                "scale": spec.scale,
                "left": spec.left,
                "right": spec.right,
                "values": _json_values(curves.values[spec.name]),
            }
            for spec in record.curves
        ],
        "gaps_are": "null",
        "las_null": LAS_NULL,
    }


def qc_document(
    curves: DigitisedCurves, record: ScanRecord, provenance: Provenance
) -> dict[str, Any]:
    """qc.json: pixel counts, gaps per curve, bundle digest, source sha256, registration."""
    depth = written_depth(curves)
    width = provenance.width_px
    per_column = (record.bottom_depth - record.top_depth) / (width - 1) if width > 1 else None
    gaps: dict[str, Any] = {}
    for spec in record.curves:
        runs = gap_runs(curves.values[spec.name])
        n_gap = sum(b - a + 1 for a, b in runs)
        gaps[spec.name] = {
            "samples": int(depth.size),
            "gap_samples": n_gap,
            "gap_fraction": n_gap / depth.size,
            "gaps": [
                {"first": a, "last": b, "from_depth": float(depth[a]), "to_depth": float(depth[b])}
                for a, b in runs
            ],
        }
    return {
        "layout_version": LAYOUT_VERSION,
        "uwi": record.uwi,
        "scan_id": record.scan_id,
        "source": {
            "uri": record.scan_uri,
            "sha256": provenance.source_sha256,
            "width_px": provenance.width_px,
            "height_px": provenance.height_px,
        },
        "bundle": {"digest": provenance.bundle_digest, "model": provenance.model},
        "registration": {
            "record": record.model_dump(mode="json"),
            "pixel_to_depth": {
                "axis": "columns",
                "first_column_depth": record.top_depth,
                "last_column_depth": record.bottom_depth,
                "depth_per_column": per_column,
                "unit": record.depth_unit,
            },
            "digitiser": _plain(curves.registration),
        },
        "pixels": _plain(curves.counts),
        "curves": gaps,
    }


def _plain(value: Any) -> Any:
    """Mappings, sequences and numpy scalars as plain JSON values (for W1's free-form dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def success_marker(files: Mapping[str, bytes]) -> bytes:
    """_SUCCESS: the layout version and the sha256 and size of every committed file."""
    return _dumps(
        {
            "layout_version": LAYOUT_VERSION,
            "files": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for name, data in files.items()
            },
        }
    )


def render_outputs(
    curves: DigitisedCurves, record: ScanRecord, provenance: Provenance
) -> ScanOutputs:
    """The objects of one scan's write-back, in the order they are written."""
    parameters = [
        ("SRCSHA", provenance.source_sha256, "SHA256 OF THE SOURCE SCAN"),
        ("MODEL", provenance.bundle_digest, f"MODEL BUNDLE DIGEST ({provenance.model})"),
    ]
    document = curves_document(curves, record)
    files = {
        LAS_NAME: las_text(curves, record, parameters=parameters).encode("ascii"),
        CURVES_NAME: _dumps(document),
        QC_NAME: _dumps(qc_document(curves, record, provenance)),
    }
    return ScanOutputs(files=files, success=success_marker(files), curves_document=document)
