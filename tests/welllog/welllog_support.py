"""Builders for the well-log serving tests: a tiny veernet bundle, scans with known curves,
manifests, and a pixel-oracle digitiser for testing the plumbing without a trained model.

The oracle reads each curve's ink value straight off the pixels (curve k is drawn with grey
level ``INK[k]``) and extracts it with the real ``extract_curves``, so the job, the write-back
and the service can be checked against curves whose gaps are known exactly.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import lascheck
import lasio
import numpy as np
import pytest
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.extract import extract_curves
from tilecast.apps.welllog.manifest import COLUMNS
from tilecast.apps.welllog.records import CurveSpec, ScanRecord
from tilecast.bundle import ContractDraft, create_bundle
from tilecast.bundle.contract import InputSpec, Postprocessing
from tilecast.errors import TilecastWarning
from tilecast.io import storage
from tilecast.models import build_model

GR = CurveSpec(name="GR", unit="gAPI", left=0.0, right=150.0, scale="linear")
RES = CurveSpec(name="RES", unit="ohm.m", left=0.2, right=2000.0, scale="log")
INK = (10, 60)  # grey level of curve 0 and curve 1
PAPER = 255
REPO = Path(__file__).resolve().parents[2]
DEMO_BUNDLE = REPO / "models" / "welllog-demo"

_BUNDLES: dict[str, Path] = {}


def tiny_welllog_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-channel, 3-class (background, GR, RES) untrained GroupNorm veernet bundle, cached."""
    if "tiny" not in _BUNDLES:
        torch.manual_seed(3)
        net = build_model(
            "veernet", {"in_channels": 1, "classes": 3, "widths": [16, 16, 16, 16, 16, 16]}
        )
        draft = ContractDraft(
            name="welllog-tiny",
            version="0.0.1",
            input=InputSpec(
                channels=1,
                channel_order="L",
                dtype="uint8",
                value_scaling="unit",
                input_range=(0, 255),
            ),
            postprocessing=Postprocessing(
                activation="softmax", labels=("background", "GR", "RES"), threshold=0.5
            ),
        )
        stats = json.dumps({"mean": [0.85], "std": [0.2], "dataset_version": "welllog-test"})
        out = tmp_path_factory.mktemp("welllog-bundle") / "welllog-tiny"
        create_bundle(
            net, draft, stats_bytes=stats.encode(), out=out, model_format="state_dict",
            architecture="veernet",
        )  # fmt: skip
        _BUNDLES["tiny"] = out
    return _BUNDLES["tiny"]


def record(
    *,
    scan_uri: str = "scan.png",
    uwi: str = "42-001-00001",
    scan_id: str = "S1",
    top: float = 1000.0,
    bottom: float = 1127.5,
    unit: str = "ft",
    curves: Sequence[CurveSpec] = (GR, RES),
) -> ScanRecord:
    return ScanRecord(
        scan_uri=scan_uri,
        uwi=uwi,
        scan_id=scan_id,
        top_depth=top,
        bottom_depth=bottom,
        depth_unit=unit,
        curves=tuple(curves),
    )


def draw_scan(
    height: int, width: int, *, n_curves: int = 2, seed: int = 0, gaps: Sequence[slice] = ()
) -> np.ndarray:
    """A (1, H, W) uint8 scan: white paper, curve k drawn 1 px thick with ink ``INK[k]``,
    left out in the ``gaps`` column ranges (for every curve)."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width), PAPER, dtype=np.uint8)
    cols = np.arange(width)
    drawn = np.ones(width, dtype=bool)
    for gap in gaps:
        drawn[gap] = False
    for k in range(n_curves):
        phase = rng.uniform(0, 2 * np.pi)
        centre = (0.5 + 0.35 * np.sin(cols / width * 6 * np.pi + phase)) * (height - 1)
        rows = np.rint(centre).astype(int)
        image[rows[drawn], cols[drawn]] = INK[k]
    return image[None]


def png_bytes(image: np.ndarray) -> bytes:
    """The image (C, H, W) uint8 as PNG bytes."""
    from rasterio.io import MemoryFile

    c, h, w = image.shape
    with warnings.catch_warnings(), MemoryFile() as mem:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with mem.open(driver="PNG", width=w, height=h, count=c, dtype="uint8") as dst:
            dst.write(image)
        return mem.read()


def write_png(uri: str, image: np.ndarray) -> str:
    storage.write_bytes(uri, png_bytes(image))
    return uri


def oracle_curves(
    image: np.ndarray, rec: ScanRecord, *, nodata: float | None = None
) -> DigitisedCurves:
    """The curves a perfect segmenter would give: class k+1 = pixels with ink ``INK[k]``;
    pixels equal to ``nodata`` are invalid."""
    plane = np.asarray(image)[0]
    valid = np.ones(plane.shape, dtype=bool) if nodata is None else plane != nodata
    probs = np.zeros((len(rec.curves) + 1, *plane.shape), dtype=np.float32)
    for k in range(len(rec.curves)):
        probs[k + 1] = plane == INK[k]
    probs[0] = 1.0 - probs[1:].max(axis=0)
    with warnings.catch_warnings():  # small test scans lie outside the scan band on purpose
        warnings.simplefilter("ignore", TilecastWarning)
        return extract_curves(probs, valid, rec)


def oracle_digitiser(
    images: Sequence[np.ndarray], records: Sequence[ScanRecord], *, nodata: float | None = None
) -> list[DigitisedCurves]:
    return [
        oracle_curves(image, rec, nodata=nodata) for image, rec in zip(images, records, strict=True)
    ]


def manifest_csv(records: Sequence[ScanRecord]) -> str:
    """A manifest with one row per curve of every record."""
    lines = [",".join(COLUMNS)]
    for rec in records:
        for c in rec.curves:
            lines.append(
                f"{rec.scan_uri},{rec.uwi},{rec.scan_id},{rec.top_depth},{rec.bottom_depth},"
                f"{rec.depth_unit},{c.name},{c.unit},{c.left},{c.right},{c.scale}"
            )
    return "\n".join(lines) + "\n"


def registration_json(rec: ScanRecord, *, with_uri: bool = False) -> dict[str, object]:
    """The registration JSON the service takes (and a prefix's ``<name>.json`` holds)."""
    data = rec.model_dump(mode="json")
    if not with_uri:
        data.pop("scan_uri")
    return data


def read_image(path: str) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def las_problems(text: str) -> list[str]:
    """lascheck's non-conformities of a LAS text, [] when conformant.

    lascheck tests "STRT (STOP) divided by STEP is a whole number" in binary floating point,
    which fails for exact decimal multiples (2359.95 / 0.05: 2359.95 * 100 is 235994.99999...
    in a float). That rule is re-checked here in exact decimal arithmetic on the header's text.
    """
    checked = lascheck.read(text)
    if checked.check_conformity():
        return []
    problems = list(checked.get_non_conformities())
    well = lasio.read(text).well
    step = Decimal(str(well["STEP"].value))
    for item in ("STRT", "STOP"):
        rule = f"{item} divided by step is not a whole number"
        if rule in problems and Decimal(str(well[item].value)) % step == 0:
            problems.remove(rule)
    return problems
