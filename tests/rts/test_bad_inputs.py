"""Bad inputs to the thaw-slump job: each ends in a clear error or a logged, counted skip.

Never a partial output: an error stops the job before the failing piece is visible, a skip
leaves no file for the skipped tile.

Cases covered elsewhere (not repeated here):

- malformed CSV line (the line named), duplicate tile ids (both lines named), empty tile list,
  a header with no rows, bad header, non-finite or inverted bbox:
  ``tests/rts/test_tilelist.py::test_errors_name_source_and_line``, ``::test_header_errors``,
  ``::test_empty_text``; from the command line, one line without a traceback:
  ``tests/rts/test_config_cli.py::test_bad_tile_list_is_one_clear_line``;
- unknown config key, threshold outside [0, 1], other bad values (key path named):
  ``tests/rts/test_config_cli.py::test_bad_configs_name_the_key``, ``::test_missing_section_is_named``;
- missing or unlisted bundle file, any changed byte (tampered weights), statistics whose md5
  differs, dataset version mismatch: ``tests/bundle/test_bundle_integrity.py`` (and on an
  object store: ``tests/storage/test_object_store.py::test_tampered_remote_bundle_is_refused_as_locally``);
  here only that a bad bundle stops the *job* before any output;
- tile list in another CRS than the basemap:
  ``tests/rts/test_job_results.py::test_tile_list_in_another_crs_stops_the_run``;
- quads that disagree (CRS, pixel size / resolution, band count, dtype, NoData, alignment),
  invalid georeferencing, a file that is not a raster:
  ``tests/io/test_basemap_errors.py``;
- tile bbox off the pixel grid, or of the wrong size:
  ``tests/rts/test_job_results.py::test_off_grid_and_wrong_size_tiles_stop_the_run_before_any_read``;
- all-NoData tile (skipped, counted, logged):
  ``tests/rts/test_job_results.py::test_all_nodata_tiles_are_skipped_counted_and_logged``;
- a basemap whose validity is an alpha band or an internal mask band (tiles byte-identical to the
  NoData basemap), dark pixels with one band 0 (data, not NoData), a 4th band named alpha only by
  ``input.channel_order``, quads mixing 3- and 4-band files (refused, named):
  ``tests/rts/test_validity.py``; real Landsat crops with NoData 0 and with an alpha band
  through ``tilecast predict`` (GDAL's ``dataset_mask()`` is the judge):
  ``tests/cli/test_real_images.py``;
- missing, wrong or forbidden credentials on a storage call:
  ``tests/storage/test_object_store.py::test_s3_missing_credentials_are_a_clear_error`` and
  the two beside it; here the job's start-up with an s3:// output and no credentials.

Output disk full is simulated with a soft ``RLIMIT_FSIZE`` while the job runs (no root, no
tiny file system needed): a write past the limit fails with EFBIG ("File too large"), the same
failed ``write()`` a full disk gives with ENOSPC, through the same code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rts_support import (
    ORIGIN,
    RES,
    echo_bundle,
    make_config,
    smooth_rgb,
    tile_hashes,
    tiles_for,
    write_quad_basemap,
)

from tilecast.apps.rts.config import RtsConfig
from tilecast.apps.rts.job import RtsJob
from tilecast.errors import BundleError, InputError, StorageError
from tilecast.grid import Tile


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    """A 256 x 256 RGB basemap in four 128-px quads, and its 16 tiles of 64 px (no overlap)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    image = smooth_rgb(3, 256, 256)
    basemap = write_quad_basemap(root / "basemap", image, quad=128)
    return basemap, tiles_for(image, tile_size=64, stride=64)


def config_for(bundle: Path, basemap: Path, out: Path | str, **inference: object) -> RtsConfig:
    settings = {"scales": [1.0], "tta": "none", "batch_size": 4, **inference}
    return make_config(bundle=bundle, basemap=basemap, out=out, **settings)  # type: ignore[arg-type]


def visible(out: Path) -> list[str]:
    """Every file a reader of the output would see (hidden temporaries excluded)."""
    if not out.exists():
        return []
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)
    )


def run_log(out: Path) -> dict:
    return json.loads((out / "logs" / "inference_log.json").read_text())


# -- the basemap ---------------------------------------------------------------------------


def test_quad_whose_header_cannot_be_read_stops_the_job_at_start(make_bundle, rgb, tmp_path):
    basemap, tiles = rgb
    broken = tmp_path / "basemap"
    broken.mkdir()
    for quad in basemap.iterdir():
        (broken / quad.name).write_bytes(quad.read_bytes())
    (broken / "quad_1_1.tif").write_bytes((basemap / "quad_1_1.tif").read_bytes()[:200])
    out = tmp_path / "out"
    with pytest.raises(StorageError) as err:
        RtsJob(config_for(make_bundle("export"), broken, out), tiles).run()
    assert "quad_1_1.tif: cannot open as a raster" in str(err.value)
    assert visible(out) == []


def in_quad_1_1(tile: Tile) -> bool:
    return tile.minx >= ORIGIN[0] + 128 * RES and tile.maxy <= ORIGIN[1] - 128 * RES


def test_quad_whose_pixels_cannot_be_decoded_skips_its_tiles_counted_and_retried(
    make_bundle, rgb, tmp_path, caplog
):
    basemap, tiles = rgb
    broken = tmp_path / "basemap"
    broken.mkdir()
    for quad in basemap.iterdir():
        (broken / quad.name).write_bytes(quad.read_bytes())
    whole = (basemap / "quad_1_1.tif").read_bytes()
    (broken / "quad_1_1.tif").write_bytes(whole[: len(whole) // 2])  # header intact
    bad = sorted(t.tile_id for t in tiles if in_quad_1_1(t))
    assert len(bad) == 4
    out = tmp_path / "out"
    config = config_for(make_bundle("export"), broken, out)
    with caplog.at_level(logging.WARNING):
        result = RtsJob(config, tiles).run()
    assert (result.n_committed, result.n_skipped) == (12, 4)
    assert not result.complete and result.not_done == {"basemap pixels unreadable": 4}
    log = run_log(out)
    assert log["skipped_reasons"] == {"basemap pixels unreadable": 4}
    assert log["status"] == "incomplete" and log["final_check"]["n_missing"] == 0
    assert log["final_check"]["not_done"] == {"basemap pixels unreadable": 4}
    assert sorted(log["final_check"]["to_retry"]) == bad
    assert sorted(t for t, e in log["tiles"].items() if e["status"] == "skipped") == bad
    # the log names the file, the window (width first) and GDAL's own message
    assert "quad_1_1.tif: block decode failed at cols 0:128, rows 0:128 (128 x 128 px)" in (
        caplog.text
    )
    assert "TIFFReadEncodedTile() failed" in caplog.text
    assert "See previous exception" not in caplog.text
    assert f"tile {bad[0]} skipped: basemap pixels unreadable" in caplog.text
    assert not [t for t in bad if (out / "tiles" / f"{t}.tif").exists()]
    # the quad repaired, a restart with the same arguments tries those tiles again
    (broken / "quad_1_1.tif").write_bytes(whole)
    again = RtsJob(config, tiles).run()
    assert (again.n_already_done, again.n_committed, again.n_skipped) == (12, 4, 0)
    assert again.complete and run_log(out)["status"] == "complete"
    assert run_log(out)["skipped_reasons"] == {}


@pytest.fixture(scope="module")
def float_bundle(tmp_path_factory) -> Path:
    """Channel 1 of a float32 input / 1000: an output pixel shows the input pixel it came from."""
    out = tmp_path_factory.mktemp("float-bundle") / "echo"
    return echo_bundle(out, channel=1, dtype="float32", input_range=(0.0, 1000.0), scale=1000.0)


@pytest.mark.parametrize("nodata", [None, float("nan")], ids=["nodata-unset", "nodata-nan"])
def test_nan_and_minus_999_pixels_in_a_float_basemap_are_nodata_and_counted(
    float_bundle, tmp_path, nodata
):
    image = np.full((3, 128, 128), 500.0, np.float32)
    image[:, 10:20, 10:20] = np.nan  # 100 pixels, every band
    image[0, 70:75, 40:50] = -999.0  # 50 pixels, one band: the pixel is invalid
    basemap = write_quad_basemap(tmp_path / "basemap", image, quad=128, nodata=nodata)
    tiles = tiles_for(image, tile_size=64, stride=64)
    out = tmp_path / "out"
    result = RtsJob(config_for(float_bundle, basemap, out), tiles).run()
    assert result.n_committed == 4
    log = run_log(out)
    assert log["sentinel_counts"] == {"-999.0": 50, "nan": 100}
    with rasterio.open(out / "tiles" / f"{tiles[0].tile_id}.tif") as src:  # rows 0-63, cols 0-63
        prob = src.read(1)
    expected = np.full((64, 64), 0.5, np.float32)
    expected[10:20, 10:20] = -1.0  # NoData
    np.testing.assert_array_equal(prob, expected)
    with rasterio.open(out / "tiles" / f"{tiles[2].tile_id}.tif") as src:  # rows 64-127
        assert (src.read(1)[6:11, 40:50] == -1.0).all()
        assert np.isfinite(src.read(1)).all()


def test_basemap_dtype_other_than_the_models_stops_the_job_at_start(float_bundle, rgb, tmp_path):
    basemap, tiles = rgb  # uint8
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        RtsJob(config_for(float_bundle, basemap, out), tiles).run()
    assert str(err.value) == (
        f"the basemap {basemap} has uint8 pixels, the model takes float32 (raw over [0.0, 1000.0])"
    )
    assert visible(out) == []


def test_basemap_with_fewer_bands_than_the_model_takes_stops_the_job_at_start(
    make_bundle, tmp_path
):
    image = smooth_rgb(4, 128, 128)[:1]  # one band (L) for a 3-channel RGB model
    basemap = write_quad_basemap(tmp_path / "basemap", image, quad=128, channel_order="L")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"the basemap has 1 band\(s\), the model takes 3 \(RGB\)"):
        RtsJob(
            config_for(make_bundle("export"), basemap, out),
            tiles_for(image, tile_size=64, stride=64),
        ).run()
    assert visible(out) == []


# -- the tile list ---------------------------------------------------------------------------


def test_tile_outside_the_basemap_is_a_counted_skip(make_bundle, rgb, tmp_path, caplog):
    basemap, tiles = rgb
    first = tiles[0]
    width = first.maxx - first.minx
    outside = Tile(
        "far_east", first.minx + 10 * width, first.miny, first.maxx + 10 * width, first.maxy
    )
    half_out = Tile(  # half of it west of the basemap: read, its outer half NoData
        "west_edge", first.minx - width / 2, first.miny, first.maxx - width / 2, first.maxy
    )
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        result = RtsJob(
            config_for(make_bundle("export"), basemap, out), [first, outside, half_out]
        ).run()
    assert (result.n_committed, result.n_skipped) == (2, 1)
    assert run_log(out)["skipped_reasons"] == {"outside the basemap": 1}
    assert "tile far_east skipped: outside the basemap" in caplog.text
    assert visible(out / "tiles") == [f"{first.tile_id}.tif", "west_edge.tif"]
    with rasterio.open(out / "tiles" / "west_edge.tif") as src:
        prob = src.read(1)
    assert (prob[:, :32] == -1).all() and (prob[:, 32:] >= 0).all()


# -- the bundle ------------------------------------------------------------------------------


def test_tampered_weights_stop_the_job_before_any_output(bundle_copy, rgb, tmp_path):
    basemap, tiles = rgb
    bundle = bundle_copy("export")
    weights = max((p for p in bundle.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(BundleError) as err:
        RtsJob(config_for(bundle, basemap, out), tiles).run()
    assert weights.name in str(err.value)
    assert visible(out) == []


# -- the output ------------------------------------------------------------------------------


def test_output_path_under_a_regular_file_is_refused_at_start(make_bundle, rgb, tmp_path):
    """Works as root too (where a read-only directory would not deny anything)."""
    basemap, tiles = rgb
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the output folder should be\n")
    out = blocker / "out"
    with pytest.raises(StorageError) as err:
        RtsJob(config_for(make_bundle("export"), basemap, out), tiles).run()
    message = str(err.value)
    assert "checked at start, before any tile" in message
    assert "output.path: cannot be written" in message and str(blocker) in message
    assert blocker.read_text() == "a file where the output folder should be\n"


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: file permissions do not deny root (the case above covers it)",
)
def test_read_only_output_directory_is_refused_at_start(make_bundle, rgb, tmp_path):
    basemap, tiles = rgb
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(StorageError) as err:
            RtsJob(config_for(make_bundle("export"), basemap, out), tiles).run()
    finally:
        out.chmod(0o755)
    assert "output.path: cannot be written" in str(err.value) and str(out) in str(err.value)
    assert visible(out) == []


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail (EFBIG) while the block runs, in this process only."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, do not kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_output_disk_full_is_a_clear_error_and_leaves_no_partial_tile(make_bundle, rgb, tmp_path):
    basemap, tiles = rgb
    out = tmp_path / "out"
    config = config_for(make_bundle("export"), basemap, out)
    with file_size_limit(4096), pytest.raises(StorageError) as err:
        RtsJob(config, tiles).run()
    first = out / "tiles" / f"{tiles[0].tile_id}.tif"
    assert str(err.value) == f"{first}: cannot write ([Errno 27] File too large)"
    assert visible(out / "tiles") == []  # the truncated tile never became visible
    # room again: the same job finishes
    again = RtsJob(config, tiles).run()
    assert again.complete and again.n_committed == len(tiles)
    assert len(tile_hashes(out)) == len(tiles)


def test_s3_output_without_credentials_fails_at_start(make_bundle, rgb, s3_bucket, monkeypatch):
    from object_stores import clear_fs_caches

    basemap, tiles = rgb
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    clear_fs_caches()
    out = f"{s3_bucket}/job-out"
    try:
        with pytest.raises(StorageError) as err:
            RtsJob(config_for(make_bundle("export"), basemap, out), tiles).run()
    finally:
        clear_fs_caches()
    message = str(err.value)
    assert "checked at start, before any tile" in message
    assert f"output.path: cannot be written: {out}/" in message and "credentials" in message


# -- completeness, as the launching workflow sees it ---------------------------------------------


def truncate_after_block_row(cog: Path, target: Path, block_row: int) -> None:
    """Copy ``cog`` cut at the first internal tile of ``block_row``: the header and every tile
    above that row decode, the rest fails (COGs store full-resolution tiles last, row by row)."""
    with rasterio.open(cog) as src:
        offset = int(src.get_tag_item(f"BLOCK_OFFSET_0_{block_row}", "TIFF", bidx=1))
    target.write_bytes(cog.read_bytes()[: offset + 10])


def test_truncated_cog_ends_incomplete_and_a_rerun_with_it_restored_equals_a_clean_run(
    make_bundle, tmp_path
):
    """The launching workflow trusts ``_SUCCESS`` and the exit status: a run that could not read
    part of the basemap must give neither, and say what a rerun will do."""
    import yaml
    from click.testing import CliRunner

    from tilecast.apps.rts.tilelist import format_tile_list
    from tilecast.cli.main import cli

    image = smooth_rgb(3, 384, 512)
    intact = write_quad_basemap(tmp_path / "intact", image, quad=512)  # one COG, 128 px tiles
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    truncate_after_block_row(intact / "quad_0_0.tif", damaged / "quad_0_0.tif", block_row=2)
    tiles = tiles_for(image, tile_size=128, stride=128)  # 3 rows x 4 cols
    tile_list = tmp_path / "tiles.csv"
    tile_list.write_text(format_tile_list(tiles))

    def run_cli(basemap: Path, out: Path):
        config = config_for(make_bundle("export"), basemap, out, tile_size=128)
        path = tmp_path / f"{out.name}.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
        args = ["rts", "run", "--config", str(path), "--tile-list", str(tile_list)]
        return CliRunner().invoke(cli, args, catch_exceptions=False)

    out = tmp_path / "out"
    first = run_cli(damaged, out)
    assert first.exit_code == 3, first.output  # EXIT_INCOMPLETE: not an error, not a success
    assert (
        "incomplete 4 of 12 tiles not done (basemap pixels unreadable: 4); no _SUCCESS. "
        "Rerun the same command to retry them." in first.output
    )
    log = run_log(out)
    assert log["status"] == "incomplete"
    assert log["final_check"]["not_done"] == {"basemap pixels unreadable": 4}
    assert not (out / "_SUCCESS").exists()
    # products were made for a person to look at, and the report says what is missing
    report = (out / "report" / "index.html").read_text()
    assert "incomplete: 4 tile(s) not done (basemap pixels unreadable: 4); no _SUCCESS" in report
    assert (out / "merged" / "region_test_prob.tif").exists()

    # the quad restored: the same command completes, identically to a clean run
    (damaged / "quad_0_0.tif").write_bytes((intact / "quad_0_0.tif").read_bytes())
    second = run_cli(damaged, out)
    assert second.exit_code == 0, second.output
    assert run_log(out)["status"] == "complete" and (out / "_SUCCESS").exists()
    clean = tmp_path / "clean"
    assert run_cli(intact, clean).exit_code == 0
    assert tile_hashes(out) == tile_hashes(clean) and len(tile_hashes(out)) == 12
    for kind in ("prob", "binary", "scale"):
        name = f"merged/region_test_{kind}.tif"
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
