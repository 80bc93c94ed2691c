"""End to end through the real digitiser (``digitise_many``) on synthetic scans from the demo
generator: ``tilecast welllog run`` on moto's S3 server, then the HTTP service one scan at a
time, which must write the same bytes as the batch job's batches (GroupNorm makes batching
invisible), and the curves read back must follow the logs the scans were drawn from. Uses the
demo bundle models/welllog-demo (a tiny untrained bundle stands in while it is missing; the
accuracy check is then skipped)."""

from __future__ import annotations

import base64

import httpx
import lasio
import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner
from welllog_support import (
    DEMO_BUNDLE,
    las_problems,
    manifest_csv,
    registration_json,
    tiny_welllog_bundle,
)

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.outputs import FILE_NAMES, SUCCESS_NAME
from tilecast.apps.welllog.service import BackgroundServer, create_app
from tilecast.apps.welllog.writeback import scan_prefix, verify_committed
from tilecast.bundle import load_bundle
from tilecast.cli.main import cli
from tilecast.demo.welllog_metrics import compare, score
from tilecast.demo.welllog_scan import MISSING_PIXEL, generate_scan
from tilecast.io import storage
from tilecast.io.raster import Georef, write_raster

pytestmark = pytest.mark.slow  # a few model passes on full-size scans (about a minute)


@pytest.fixture(scope="module")
def bundle_uri(tmp_path_factory) -> str:
    if (DEMO_BUNDLE / "manifest.json").exists():
        return str(DEMO_BUNDLE)
    return str(tiny_welllog_bundle(tmp_path_factory))


@pytest.fixture(scope="module")
def batch(s3_bucket, bundle_uri):
    """Two synthetic 480 x 3200 scans (the demo generator: grid, noise, skew, missing pixels as
    the TIFF's NoData) on S3, their manifest, and the CLI's run of them."""
    root = f"{s3_bucket}/e2e"
    records, truths = [], []
    for seed in (50100, 50101):
        scan = generate_scan(seed, width=3200, height=480, missing=seed == 50100)
        rec = scan.record.model_copy(update={"scan_uri": f"{root}/scans/{seed}.tif"})
        write_raster(
            rec.scan_uri,
            scan.image[None],
            georef=Georef(crs=None, transform=Affine.identity()),
            nodata=float(MISSING_PIXEL),
            channel_order="L",
        )
        records.append(rec)
        truths.append(scan.truth)
    storage.write_text(f"{root}/manifest.csv", manifest_csv(records))
    args = ["welllog", "run", "--scans", f"{root}/manifest.csv", "--bundle", bundle_uri]
    args += ["--out", f"{root}/job", "--batch-size", "2"]
    result = CliRunner().invoke(cli, args)
    return root, records, truths, args, result


def test_cli_run_writes_every_scan_and_a_rerun_skips_them(batch):
    root, records, _, args, result = batch
    assert result.exit_code == 0, result.output
    assert "2 accepted, 0 skipped (already done), 0 rejected, 0 failed" in result.output
    for rec in records:
        prefix = scan_prefix(f"{root}/job", rec)
        assert verify_committed(prefix) == []
        text = storage.read_text(f"{prefix}/curves.las")
        assert las_problems(text) == []
        las = lasio.read(text)
        assert las.well["STRT"].value == rec.top_depth
        assert las.well["STOP"].value == pytest.approx(rec.bottom_depth)
        unit = {"m": "M", "ft": "FT"}[rec.depth_unit]
        assert las.well["STEP"].unit == unit and not np.isnan(las.index).any()
        assert las.well["STEP"].value * (rec.bottom_depth - rec.top_depth) > 0  # sign
        assert [c.mnemonic for c in las.curves] == ["DEPT", *(c.name for c in rec.curves)]

    rerun = CliRunner().invoke(cli, args)
    assert rerun.exit_code == 0, rerun.output
    assert "0 accepted, 2 skipped (already done)" in rerun.output


def test_cli_run_exits_non_zero_when_a_scan_fails(batch, bundle_uri, tmp_path):
    _, records, _, _, _ = batch
    manifest = tmp_path / "one.csv"
    manifest.write_text(manifest_csv(records[1:]))
    out = tmp_path / "out"
    out.mkdir()
    (out / f"well={records[1].uwi}").write_text("a file where a folder must go")
    args = ["welllog", "run", "--scans", str(manifest), "--bundle", bundle_uri]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "0 accepted, 0 skipped (already done), 0 rejected, 1 failed" in result.output
    assert f"failed     {records[1].scan_uri}: write-back" in result.output


def test_the_service_one_scan_at_a_time_equals_the_batch_job(batch, bundle_uri):
    root, records, _, _, result = batch
    assert result.exit_code == 0, result.output
    app = create_app(load_bundle(bundle_uri), f"{root}/served")
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=300) as c:
        for rec in records:
            body = {
                "registration": registration_json(rec, with_uri=True),
                "image": base64.b64encode(storage.read_bytes(rec.scan_uri)).decode(),
            }
            reply = c.post("/scans", json=body)
            assert reply.status_code == 200, reply.text
    for rec in records:
        served, batched = scan_prefix(f"{root}/served", rec), scan_prefix(f"{root}/job", rec)
        for name in (*FILE_NAMES, SUCCESS_NAME):
            assert storage.read_bytes(f"{served}/{name}") == storage.read_bytes(
                f"{batched}/{name}"
            ), name


def test_the_written_curves_follow_the_source_logs(batch, bundle_uri):
    """The downstream reader's curves (LAS read back) against the logs the scans were drawn
    from: the serving path keeps the demo model's accuracy (no flipped axis, lost NoData...)."""
    if bundle_uri != str(DEMO_BUNDLE):
        pytest.skip("needs the trained demo bundle models/welllog-demo")
    root, records, truths, _, result = batch
    assert result.exit_code == 0, result.output
    for rec, truth in zip(records, truths, strict=True):
        las = lasio.read(storage.read_text(f"{scan_prefix(f'{root}/job', rec)}/curves.las"))
        read_back = DigitisedCurves(
            depth=las.index,
            step=las.well["STEP"].value,
            depth_unit=rec.depth_unit,
            values={c.name: las[c.name] for c in rec.curves},
            units={c.name: c.unit for c in rec.curves},
        )
        for comparison in compare(read_back, rec, truth):
            found = score([comparison])
            assert found.within_division > 0.5, (rec.scan_id, found)
            assert found.gap_agreement > 0.8, (rec.scan_id, found)
