"""The RTS QC report: one self-contained HTML page built from a hand-made output directory."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from shapely.affinity import scale as shp_scale
from shapely.geometry import MultiPolygon, Point

pytest.importorskip("matplotlib")

from PIL import Image

from tilecast.apps.rts.report import (
    combine_run_logs,
    make_report,
    nice_length,
    select_chips,
    true_north,
)
from tilecast.io.raster import Georef, write_cog
from tilecast.io.report_files import RunLogFile, read_reduced
from tilecast.io.vector import write_polygons

ORIGIN = (-2_400_000.0, -300_000.0)
RES = 3.0
H, W = 240, 480  # basemap and mosaic, pixels; two 240 x 240 quads side by side
PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")

# slumps: (row, col, radius_y, radius_x, probability) in pixels
SLUMPS = [(70, 100, 22, 34, 0.93), (160, 300, 12, 18, 0.71), (120, 420, 5, 6, 0.56)]

RUN_LOG = {
    "schema_version": 1,
    "status": "complete",
    "model_version": "rts-unet 3.2.1",
    "model_checkpoint": "model.pt2",
    "bundle_digest": "ab" * 32,
    "normalization_stats_hash": "0123456789abcdef0123456789abcdef",
    "inference_date": "2025-10-02T08:15:00+00:00",
    "basemap": "",  # set per test
    "basemap_version": "2025-Q3",
    "scales_used": [1.0, 0.5],
    "tta_config": "minimal",
    "threshold": 0.45,
    "tile_size": 512,
    "precision": "bf16",
    "plan_fingerprint": "f" * 64,
    "n_tiles_total": 40,
    "n_tiles_processed": 37,
    "n_tiles_skipped": 3,
    "n_tiles_with_detection": 5,
    "total_rts_area_km2": None,
    "processing_time_hours": 1.25,
    "gpu_type": "NVIDIA H100 80GB HBM3",
    "runs": [{"started": "2025-10-02T08:15:00+00:00", "tiles_already_recorded": 0}],
    "skipped_reasons": {"all_nodata": 3},
    "sentinel_counts": {"nodata": 1234},
    "qc_errors": {"clipped_predictions": 2},
    "tiles": {
        "t001": {"status": "done", "detected": True, "region": "r1"},
        "t002": {"status": "done", "detected": False, "region": "r2"},
        "t003": {
            "status": "skipped",
            "reason": "all_nodata",
            "region": "r3",
        },  # skipped: no mosaic expected
    },
}


def _transform(row: int = 0, col: int = 0) -> Affine:
    return Affine(RES, 0, ORIGIN[0] + col * RES, 0, -RES, ORIGIN[1] - row * RES)


def _georef(row: int = 0, col: int = 0) -> Georef:
    return Georef(crs="EPSG:3413", transform=_transform(row, col))


def _ellipse(row: float, col: float, ry: float, rx: float) -> MultiPolygon:
    """A slump outline in map coordinates (pixel centre row/col, radii in pixels)."""
    x = ORIGIN[0] + (col + 0.5) * RES
    y = ORIGIN[1] - (row + 0.5) * RES
    return MultiPolygon([shp_scale(Point(x, y).buffer(1.0, 32), rx * RES, ry * RES)])


def _slump_masks() -> list[np.ndarray]:
    rows, cols = np.mgrid[0:H, 0:W]
    return [((rows - r) / ry) ** 2 + ((cols - c) / rx) ** 2 <= 1 for r, c, ry, rx, _ in SLUMPS]


def write_basemap(root: Path) -> Path:
    """A textured tundra RGB with bright slump scars, as two COG quads."""
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[0:H, 0:W]
    base = np.stack(
        [
            90 + 25 * np.sin(cols / 37.0) + 10 * np.cos(rows / 23.0),
            110 + 20 * np.sin(rows / 29.0),
            70 + 15 * np.cos((rows + cols) / 41.0),
        ]
    ) + rng.normal(0, 8, size=(3, H, W))
    for mask in _slump_masks():
        base[:, mask] = np.array([185.0, 160.0, 125.0])[:, None] + rng.normal(0, 6, (3, mask.sum()))
    image = np.clip(base, 1, 255).astype(np.uint8)
    root.mkdir(parents=True)
    for q, c0 in enumerate((0, W // 2)):
        part = np.ascontiguousarray(image[:, :, c0 : c0 + W // 2])
        write_cog(
            root / f"quad_{q}.tif",
            part,
            georef=_georef(0, c0),
            nodata=0,
            channel_order="RGB",
            blocksize=128,
        )
    return root


def write_output(root: Path, basemap: Path, *, n_polygons: int = 3) -> Path:
    """merged/ mosaics of region r1 (r2 is named by the run log but has none), vectors/, logs/."""
    rng = np.random.default_rng(3)
    prob = rng.uniform(0.0, 0.12, size=(H, W)).astype(np.float32)
    for mask, (*_, p) in zip(_slump_masks(), SLUMPS, strict=True):
        prob[mask] = p
    prob[:, -40:] = -1.0  # no tile saw these
    prob[-25:, :60] = -1.0
    nodata = prob < 0
    binary = np.where(nodata, 255, prob >= 0.45).astype(np.uint8)
    scale = np.where(nodata, -1.0, 1.0).astype(np.float32)
    merged = root / "merged"
    merged.mkdir(parents=True)
    write_cog(merged / "region_r1_prob.tif", prob[None], georef=_georef(), nodata=-1.0)
    write_cog(merged / "region_r1_binary.tif", binary[None], georef=_georef(), nodata=255)
    write_cog(merged / "region_r1_scale.tif", scale[None], georef=_georef(), nodata=-1.0)

    geoms = [_ellipse(r, c, ry, rx) for r, c, ry, rx, _ in SLUMPS][:n_polygons]
    probs = [p for *_, p in SLUMPS][:n_polygons]
    write_polygons(
        root / "vectors" / "rts_predictions.gpkg",
        geoms,
        crs="EPSG:3413",
        layer="rts_predictions",
        attributes={
            "rts_id": list(range(1, len(geoms) + 1)),
            "area_m2": [g.area for g in geoms],
            "perimeter_m": [g.length for g in geoms],
            "centroid_lat": [69.0] * len(geoms),
            "centroid_lon": [-133.0] * len(geoms),
            "mean_prob": [p - 0.08 for p in probs],
            "max_prob": probs,
            "detection_scale": ["1.0"] * len(geoms),
            "tile_ids": ["t001"] * len(geoms),
            "region": ["r1"] * len(geoms),
        },
    )
    logs = root / "logs"
    logs.mkdir(parents=True)
    (logs / "inference_log.json").write_text(json.dumps({**RUN_LOG, "basemap": str(basemap)}))
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("report")
    basemap = write_basemap(tmp / "basemap")
    output = write_output(tmp / "out", basemap)
    summary = make_report(str(output))
    return output, summary, Path(summary.path).read_text(encoding="utf-8")


def _pngs(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in PNG.findall(html)]


def test_report_is_one_html_file_with_decodable_images(report) -> None:
    output, summary, html = report
    assert Path(summary.path) == output / "report" / "index.html"
    assert [p.name for p in (output / "report").iterdir()] == ["index.html"]
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<script" not in html and "http://" not in html and "https://" not in html
    # 1 overview (r1) + 3 chips + 2 histograms
    assert html.count("data:image/png;base64,") == summary.n_images == 6
    for img in _pngs(html):
        pixels = np.asarray(img.convert("RGB"))
        assert min(img.size) >= 100
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "a near-uniform image"


def test_report_shows_the_run_log_and_the_polygons(report) -> None:
    _, summary, html = report
    for text in (
        "rts-unet 3.2.1",
        "2025-Q3",
        "2025-10-02T08:15:00+00:00",
        "0.45",
        "1, 0.5",  # scales
        "minimal",
        "NVIDIA H100 80GB HBM3",
        "1.25 h",
        "all_nodata: 3",
        "clipped_predictions: 2",  # QC errors, highlighted
        "nodata: 1,234",  # sentinel counts
        "0123456789abcdef0123456789abcdef",  # run-log table
    ):
        assert text in html, text
    assert re.search(r'Tiles processed</div><div class="v">37<', html)
    assert re.search(r'Tiles with detection</div><div class="v">5<', html)
    assert re.search(r'RTS polygons</div><div class="v">3<', html)
    assert re.search(r'class="card error"><div class="k">QC errors</div><div class="v">2<', html)
    assert summary.n_polygons == 3 and summary.n_regions == 2
    expected_km2 = sum(g.area for g in (_ellipse(r, c, ry, rx) for r, c, ry, rx, _ in SLUMPS)) / 1e6
    assert summary.total_area_km2 == pytest.approx(expected_km2)
    assert f"{expected_km2:,.4f} km²" in html
    for rts_id in (1, 2, 3):
        assert f"rts_id {rts_id}</b>" in html
    assert "EPSG:3413 extent" in html


def test_report_names_the_missing_mosaics(report) -> None:
    _, summary, html = report
    for kind in ("prob", "binary", "scale"):
        assert f"merged/region_r2_{kind}.tif" in html
        assert f"merged/region_r2_{kind}.tif" in summary.missing_files
    assert any("region_r2_prob.tif" in e for e in summary.errors)
    assert any("QC errors" in e for e in summary.errors)
    assert "merged/region_r1_prob.tif" not in summary.missing_files
    assert "region_r3" not in html  # its only tile was skipped: no mosaic is expected


def test_report_with_zero_polygons(tmp_path: Path) -> None:
    basemap = write_basemap(tmp_path / "basemap")
    output = write_output(tmp_path / "out", basemap, n_polygons=0)
    target = tmp_path / "elsewhere" / "qc.html"
    summary = make_report(str(output), out=str(target), basemap=str(basemap))
    html = target.read_text(encoding="utf-8")
    assert summary.path == str(target) and summary.n_polygons == 0
    assert "No RTS polygons were detected" in html
    assert html.count("data:image/png;base64,") == summary.n_images == 1  # the overview only
    assert re.search(r'RTS polygons</div><div class="v">0<', html)
    # 5 tiles recorded a detection, but there is no polygon: a warning
    assert any("no polygon" in w for w in summary.warnings)


def test_report_without_basemap_or_geopackage(tmp_path: Path) -> None:
    basemap = write_basemap(tmp_path / "basemap")
    output = write_output(tmp_path / "out", basemap)
    (output / "vectors" / "rts_predictions.gpkg").unlink()
    (output / "merged" / "region_r1_prob.tif").unlink()
    summary = make_report(str(output), basemap=str(tmp_path / "nowhere"))
    html = Path(summary.path).read_text(encoding="utf-8")
    assert "vectors/rts_predictions.gpkg is missing" in html
    assert "merged/region_r1_prob.tif" in summary.missing_files
    assert "the binary mosaic is shown" in html  # r1 overview from the binary mosaic
    assert "cannot be opened" in html
    assert html.count("data:image/png;base64,") == 1


def test_read_reduced_keeps_small_features_and_nodata(tmp_path: Path) -> None:
    prob = np.zeros((400, 400), dtype=np.float32)
    prob[200:204, 300:304] = 0.9  # a 4 x 4 px slump: 12 m across
    prob[37, 153] = 0.8  # one hot pixel, averaged away in the overviews
    prob[:, :100] = -1
    write_cog(tmp_path / "p.tif", prob[None], georef=_georef(), nodata=-1.0, blocksize=128)
    small = read_reduced(str(tmp_path / "p.tif"), (40, 40))
    assert small.shape == (40, 40)
    assert np.isnan(small[:, :10]).all() and np.isfinite(small[:, 10:]).all()
    assert (
        small[3, 15] < 0.1
        and small[20, 30] == pytest.approx(0.9)
        and np.nanmax(small) == pytest.approx(0.9)
    )
    exact = read_reduced(str(tmp_path / "p.tif"), (40, 40), max_overview_factor=1)
    assert exact[3, 15] == pytest.approx(0.8) and exact[20, 30] == pytest.approx(0.9)
    assert np.array_equal(np.isnan(exact), np.isnan(small))


def test_select_chips_deduplicates_and_ranks() -> None:
    area = np.array([500.0, 9000.0, 100.0, 3000.0, np.nan])
    max_prob = np.array([0.99, 0.6, 0.97, 0.5, 0.8])
    mean_prob = np.array([0.9, 0.5, 0.7, 0.3, 0.6])
    picks = select_chips(area, max_prob, mean_prob, 2)
    assert [p.row for p in picks["largest"]] == [1, 3]
    assert [p.row for p in picks["most_confident"]] == [0, 2]
    assert [p.row for p in picks["least_confident"]] == [4]  # 3 and 1 are shown above
    assert picks["largest"][1].ranks == {"largest": 2, "least_confident": 1}
    assert picks["least_confident"][0].ranks == {"least_confident": 3}
    assert select_chips(area[:0], max_prob[:0], mean_prob[:0], 6) == {
        "largest": [],
        "most_confident": [],
        "least_confident": [],
    }


def test_combine_run_logs_sums_shards_and_spots_a_combined_log() -> None:
    def shard(name: str, tiles: list[str], **extra: object) -> RunLogFile:
        data = {
            **RUN_LOG,
            "n_tiles_total": len(tiles),
            "n_tiles_processed": len(tiles) - 1,
            "n_tiles_skipped": 1,
            "qc_errors": {},
            "sentinel_counts": {"nan": 2},
            "tiles": {t: {"status": "done", "region": name} for t in tiles}
            | {f"{name}-x": {"status": "skipped", "reason": "all_nodata"}},
            **extra,
        }
        return RunLogFile(f"inference_log.{name}.json", data)

    a, b = shard("a", ["t1", "t2", "t3"]), shard("b", ["t4", "t5"], model_version="other 1.0")
    totals = combine_run_logs([a, b])
    assert totals is not None
    assert (totals.n_tiles_total, totals.n_tiles_processed, totals.n_tiles_skipped) == (5, 3, 2)
    assert totals.sentinel_counts == {"nan": 4}
    assert totals.processing_time_hours == pytest.approx(2.5)
    assert set(totals.disagreements) == {"model_version"}
    assert totals.regions == ("a", "b")  # skipped tiles name no region
    combined = RunLogFile(
        "inference_log.json",
        {
            **RUN_LOG,
            "tiles": {t: {"status": "done"} for t in ["t1", "t2", "t3", "t4", "t5", "a-x", "b-x"]},
        },
    )
    totals = combine_run_logs([combined, a, b])
    assert totals is not None and totals.used == ("inference_log.json",)
    assert totals.n_tiles_processed == RUN_LOG["n_tiles_processed"]
    assert totals.regions == ("all",)  # done tiles without a region merge into region "all"
    assert combine_run_logs([RunLogFile("inference_log.json", None, "broken")]) is None


def test_nice_length() -> None:
    assert [nice_length(v) for v in (0.9, 7.0, 260.0, 1999.0)] == [0.5, 5.0, 200.0, 1000.0]


def test_true_north_points_to_the_pole_in_polar_stereographic() -> None:
    dx, dy = true_north("EPSG:3413", -2_400_000.0, -300_000.0)  # type: ignore[misc]
    expected = np.array([2_400_000.0, 300_000.0]) / np.hypot(2_400_000.0, 300_000.0)
    assert np.allclose((dx, dy), expected, atol=1e-3)
    dx, dy = true_north("EPSG:3413", 0.0, -2_000_000.0)  # type: ignore[misc]
    assert np.allclose((dx, dy), (0.0, 1.0), atol=1e-3)
