"""End to end through the real digitiser (``digitise_many``): ``tilecast welllog run`` on moto's
S3 server, then the HTTP service one scan at a time, which must write the same bytes as the
batch job's batches (GroupNorm makes batching invisible). Uses the demo bundle when it exists,
else a tiny untrained veernet bundle (the curves are then nonsense, the plumbing is not)."""

from __future__ import annotations

import base64

import httpx
import lascheck
import lasio
import numpy as np
import pytest
from click.testing import CliRunner
from welllog_support import (
    DEMO_BUNDLE,
    GR,
    RES,
    draw_scan,
    manifest_csv,
    png_bytes,
    record,
    registration_json,
    tiny_welllog_bundle,
    write_png,
)

from tilecast.apps.welllog.outputs import FILE_NAMES, SUCCESS_NAME
from tilecast.apps.welllog.service import BackgroundServer, create_app
from tilecast.apps.welllog.writeback import scan_prefix, verify_committed
from tilecast.bundle import load_bundle
from tilecast.cli.main import cli
from tilecast.io import storage

pytestmark = pytest.mark.slow  # a few model passes on full-size scans (about a minute)


@pytest.fixture(scope="module")
def bundle_uri(tmp_path_factory) -> str:
    if (DEMO_BUNDLE / "manifest.json").exists():
        return str(DEMO_BUNDLE)
    return str(tiny_welllog_bundle(tmp_path_factory))


@pytest.fixture(scope="module")
def batch(s3_bucket, bundle_uri):
    """Two 480 x 3200 scans on S3 (two curves and one), a manifest, and the CLI's run of them."""
    root = f"{s3_bucket}/e2e"
    records, images = [], []
    for i, curves in enumerate([(GR, RES), (GR,)]):
        rec = record(
            scan_uri=f"{root}/scans/{i}.png",
            uwi=f"42-500-{i:05d}",
            scan_id=f"E{i}",
            top=3000.0,
            bottom=3000.0 + 3199 * 0.05,
            curves=curves,
        )
        image = draw_scan(480, 3200, n_curves=len(curves), seed=20 + i)
        write_png(rec.scan_uri, image)
        records.append(rec)
        images.append(image)
    storage.write_text(f"{root}/manifest.csv", manifest_csv(records))
    args = ["welllog", "run", "--scans", f"{root}/manifest.csv", "--bundle", bundle_uri]
    args += ["--out", f"{root}/job", "--batch-size", "2"]
    result = CliRunner().invoke(cli, args)
    return root, records, images, args, result


def test_cli_run_writes_every_scan_and_a_rerun_skips_them(batch):
    root, records, _, args, result = batch
    assert result.exit_code == 0, result.output
    assert "2 accepted, 0 skipped (already done), 0 rejected, 0 failed" in result.output
    for rec in records:
        prefix = scan_prefix(f"{root}/job", rec)
        assert verify_committed(prefix) == []
        text = storage.read_text(f"{prefix}/curves.las")
        checked = lascheck.read(text)
        assert checked.check_conformity(), checked.get_non_conformities()
        las = lasio.read(text)
        assert las.well["STRT"].value == rec.top_depth
        assert las.well["STOP"].value == pytest.approx(rec.bottom_depth)
        assert las.well["STEP"].unit == "FT" and not np.isnan(las.index).any()
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
    root, records, images, _, result = batch
    assert result.exit_code == 0, result.output
    app = create_app(load_bundle(bundle_uri), f"{root}/served")
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=300) as c:
        for rec, image in zip(records, images, strict=True):
            body = {
                "registration": registration_json(rec, with_uri=True),
                "image": base64.b64encode(png_bytes(image)).decode(),
            }
            reply = c.post("/scans", json=body)
            assert reply.status_code == 200, reply.text
    for rec in records:
        served, batched = scan_prefix(f"{root}/served", rec), scan_prefix(f"{root}/job", rec)
        for name in (*FILE_NAMES, SUCCESS_NAME):
            assert storage.read_bytes(f"{served}/{name}") == storage.read_bytes(
                f"{batched}/{name}"
            ), name
