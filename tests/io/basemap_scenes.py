"""Self-checking synthetic basemaps written once per session.

Pattern (uint16, 3 bands, NoData 65535): band 1 = global row, band 2 = global col, band 3 =
quad index + 1, in the basemap's union grid. Each quad has a NoData margin; the quads sit on a
lattice with gaps between them and one lattice cell left empty, so a window can cross quad
edges, gaps, holes and the basemap border.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
import rasterio
import rasterio.crs
from affine import Affine

from tilecast.grid.windows import Window

NODATA = 65535
RES = 3.0
X0, Y0 = -1_500_000.0, 900_000.0  # upper-left of the union grid (EPSG:3413 metres)
CRS = "EPSG:3413"
QUAD_H, QUAD_W = 512, 512  # two by two 256-px blocks per quad
STEP_R, STEP_C = 520, 530  # lattice spacing: gaps of 8 rows and 18 cols between quads
MARGIN = 3  # NoData rows/cols on every side of every quad
# (lattice row, lattice col) of each quad; (1, 1) is a hole
LATTICE = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2)]
BASE_H = STEP_R + QUAD_H
BASE_W = 2 * STEP_C + QUAD_W


@dataclass(frozen=True)
class Scene:
    """A written basemap and the pixels a perfect reader returns for it."""

    uri: Path
    truth: np.ndarray  # (3, BASE_H, BASE_W) uint16, NoData where invalid
    truth_valid: np.ndarray  # (BASE_H, BASE_W) bool
    footprints: tuple[Window, ...]
    block: int = 256

    def expected(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Boundless read of the truth arrays."""
        out = np.full((3, *window.shape), NODATA, np.uint16)
        valid = np.zeros(window.shape, bool)
        inside = window.clip_to(BASE_H, BASE_W)
        if inside is not None:
            dst = inside.relative_to(window).slices
            out[:, dst[0], dst[1]] = self.truth[:, inside.slices[0], inside.slices[1]]
            valid[dst] = self.truth_valid[inside.slices]
        return out, valid


def quad_pixels(index: int, footprint: Window, *, margin: int = MARGIN) -> np.ndarray:
    rows = np.arange(footprint.row, footprint.row_stop, dtype=np.uint16)
    cols = np.arange(footprint.col, footprint.col_stop, dtype=np.uint16)
    data = np.empty((3, footprint.height, footprint.width), np.uint16)
    data[0] = rows[:, None]
    data[1] = cols[None, :]
    data[2] = index + 1
    if margin:
        data[:, :margin, :] = NODATA
        data[:, -margin:, :] = NODATA
        data[:, :, :margin] = NODATA
        data[:, :, -margin:] = NODATA
    return data


def write_quad(
    path: Path,
    data: np.ndarray,
    *,
    transform: Affine,
    crs: str | None = CRS,
    nodata: float | None = NODATA,
    tile: int | None = 256,
    driver: str = "GTiff",
) -> None:
    count, height, width = data.shape
    profile: dict = {
        "driver": driver,
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
    }
    if driver == "COG":
        profile["blocksize"] = tile
    elif tile:
        profile.update(tiled=True, blockxsize=tile, blockysize=tile)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def quad_transform(footprint: Window) -> Affine:
    return Affine(RES, 0.0, X0 + footprint.col * RES, 0.0, -RES, Y0 - footprint.row * RES)


def write_vrt(path: Path, quads: list[tuple[Path, Window]], *, height: int, width: int) -> None:
    """A mosaic VRT over the quads (what gdalbuildvrt writes), written as XML by hand."""
    bands = []
    for b in (1, 2, 3):
        sources = "".join(
            f"""
      <ComplexSource>
        <SourceFilename relativeToVRT="1">{qpath.name}</SourceFilename>
        <SourceBand>{b}</SourceBand>
        <SourceProperties RasterXSize="{fp.width}" RasterYSize="{fp.height}"
          DataType="UInt16" BlockXSize="256" BlockYSize="256"/>
        <SrcRect xOff="0" yOff="0" xSize="{fp.width}" ySize="{fp.height}"/>
        <DstRect xOff="{fp.col}" yOff="{fp.row}" xSize="{fp.width}" ySize="{fp.height}"/>
        <NODATA>{NODATA}</NODATA>
      </ComplexSource>"""
            for qpath, fp in quads
        )
        bands.append(
            f"""
  <VRTRasterBand dataType="UInt16" band="{b}">
    <NoDataValue>{NODATA}</NoDataValue>{sources}
  </VRTRasterBand>"""
        )
    wkt = rasterio.crs.CRS.from_string(CRS).to_wkt()
    path.write_text(
        f"""<VRTDataset rasterXSize="{width}" rasterYSize="{height}">
  <SRS>{escape(wkt)}</SRS>
  <GeoTransform>{X0!r}, {RES!r}, 0.0, {Y0!r}, 0.0, {-RES!r}</GeoTransform>{"".join(bands)}
</VRTDataset>
"""
    )


def _paint(quads: list[tuple[int, Window, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The truth arrays: first valid quad wins, NoData elsewhere."""
    truth = np.full((3, BASE_H, BASE_W), NODATA, np.uint16)
    valid = np.zeros((BASE_H, BASE_W), bool)
    for _, fp, data in quads:
        ok = ~(data == NODATA).all(axis=0) & ~valid[fp.slices]  # GDAL: NoData in every band
        view = truth[:, fp.slices[0], fp.slices[1]]
        view[:, ok] = data[:, ok]
        valid[fp.slices] |= ok
    return truth, valid


def lattice_footprints() -> list[Window]:
    return [Window(r * STEP_R, c * STEP_C, QUAD_H, QUAD_W) for r, c in LATTICE]


@pytest.fixture(scope="session")
def quad_scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """(c) a directory of five tiled GeoTIFF quads with NoData margins, gaps and a hole."""
    root = tmp_path_factory.mktemp("quads")
    painted = []
    for i, fp in enumerate(lattice_footprints()):
        data = quad_pixels(i, fp)
        write_quad(root / f"quad_{i:02d}.tif", data, transform=quad_transform(fp))
        painted.append((i, fp, data))
    (root / "notes.txt").write_text("not a quad")
    truth, valid = _paint(painted)
    return Scene(root, truth, valid, tuple(fp for _, fp, _ in painted))


@pytest.fixture(scope="session")
def vrt_scene(quad_scene: Scene) -> Scene:
    """(b) a VRT mosaic over the same quads."""
    path = quad_scene.uri / "mosaic.vrt"
    quads = [
        (quad_scene.uri / f"quad_{i:02d}.tif", fp) for i, fp in enumerate(quad_scene.footprints)
    ]
    write_vrt(path, quads, height=BASE_H, width=BASE_W)
    return Scene(path, quad_scene.truth, quad_scene.truth_valid, (Window(0, 0, BASE_H, BASE_W),))


@pytest.fixture(scope="session")
def file_scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """(a) one tiled GeoTIFF, no NoData margin, size not a multiple of its 256-px tiles."""
    root = tmp_path_factory.mktemp("single")
    fp = Window(0, 0, 700, 900)
    data = quad_pixels(0, fp, margin=0)
    data[:, 100:110, 200:230] = NODATA  # a NoData patch inside
    data[0, 300:305, 600:640] = NODATA  # NoData in one band only: valid data (GDAL's rule)
    write_quad(root / "basemap.tif", data, transform=quad_transform(fp))
    truth = np.full((3, BASE_H, BASE_W), NODATA, np.uint16)
    valid = np.zeros((BASE_H, BASE_W), bool)
    truth[:, :700, :900] = data
    with rasterio.open(root / "basemap.tif") as src:  # GDAL's own dataset mask is the truth
        valid[:700, :900] = src.dataset_mask() > 0
    assert valid[300:305, 600:640].all() and not valid[100:110, 200:230].any()
    truth[:, ~valid] = NODATA
    return Scene(root / "basemap.tif", truth, valid, (fp,))
