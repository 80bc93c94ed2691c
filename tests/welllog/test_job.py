"""The batch job: accepted, skipped, rejected and failed scans; resumable; progress; the LAS it
writes read back by lasio and lascheck against the registration."""

from __future__ import annotations

import json

import lasio
import numpy as np
import pytest
from welllog_support import (
    GR,
    INK,
    RES,
    draw_scan,
    las_problems,
    manifest_csv,
    oracle_curves,
    oracle_digitiser,
    png_bytes,
    record,
    tiny_welllog_bundle,
    write_png,
)

from tilecast.apps.welllog.job import WelllogJob
from tilecast.apps.welllog.manifest import read_manifest
from tilecast.apps.welllog.outputs import FILE_NAMES, SUCCESS_NAME
from tilecast.apps.welllog.writeback import scan_prefix, verify_committed
from tilecast.bundle import load_bundle
from tilecast.errors import InputError
from tilecast.io import storage

H, W = 64, 640  # small scans: the oracle needs no model, the plumbing is what is tested


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(tiny_welllog_bundle(tmp_path_factory))


def make_batch(root: str, n: int = 3):
    """n good scans under ``root`` with a manifest; returns (manifest uri, records, images)."""
    records, images = [], []
    for i in range(n):
        rec = record(
            scan_uri=f"{root}/scans/scan{i}.png",
            uwi=f"42-001-{i:05d}",
            scan_id=f"S{i}",
            top=1000.0 + 100 * i,
            bottom=1000.0 + 100 * i + (W - 1) * 0.05,
            curves=(GR, RES) if i % 2 == 0 else (GR,),
        )
        image = draw_scan(H, W, n_curves=len(rec.curves), seed=i, gaps=[slice(10 * i, 10 * i + 25)])
        write_png(rec.scan_uri, image)
        records.append(rec)
        images.append(image)
    uri = f"{root}/manifest.csv"
    storage.write_text(uri, manifest_csv(records))
    return uri, records, images


def check_las(prefix: str, rec, expected) -> None:
    """The downstream reader's view: conformant LAS, registration depths/units, exact gaps."""
    text = storage.read_text(f"{prefix}/curves.las")
    assert las_problems(text) == []
    las = lasio.read(text)
    unit = {"ft": "FT", "m": "M"}[rec.depth_unit]
    assert las.well["STRT"].value == rec.top_depth
    assert las.well["STOP"].value == pytest.approx(rec.bottom_depth, abs=1e-9)
    assert las.well["STEP"].value == expected.step
    assert {las.well[k].unit for k in ("STRT", "STOP", "STEP")} == {unit}
    assert las.curves[0].mnemonic == "DEPT" and las.curves[0].unit == unit
    assert not np.isnan(las.index).any()
    assert [c.unit for c in las.curves][1:] == [c.unit for c in rec.curves]
    for spec in rec.curves:
        truth = expected.values[spec.name]
        assert np.isnan(truth).any()  # the drawn gap is there
        assert np.array_equal(np.isnan(las[spec.name]), np.isnan(truth))
        ok = ~np.isnan(truth)
        np.testing.assert_allclose(las[spec.name][ok], truth[ok], rtol=1e-6, atol=1e-5)


def test_job_writes_every_scan_in_the_layout(bundle, bucket):
    uri, records, images = make_batch(bucket)
    events = []
    job = WelllogJob(bundle, f"{bucket}/out", batch_size=2, digitiser=oracle_digitiser,
                     progress=events.append)  # fmt: skip
    summary = job.run(read_manifest(uri))
    assert summary.ok
    assert summary.count("accepted") == 3 and len(summary.outcomes) == 3
    assert events[-1].done == events[-1].total == 3
    for rec, image in zip(records, images, strict=True):
        prefix = scan_prefix(f"{bucket}/out", rec)
        assert verify_committed(prefix) == []
        check_las(prefix, rec, oracle_curves(image, rec))
        qc = json.loads(storage.read_bytes(f"{prefix}/qc.json"))
        assert qc["bundle"]["digest"] == bundle.digest
        assert qc["source"]["uri"] == rec.scan_uri
        assert (qc["source"]["width_px"], qc["source"]["height_px"]) == (W, H)


def test_a_restart_skips_committed_scans_and_finishes_the_rest(bundle, tmp_path):
    uri, records, _ = make_batch(str(tmp_path))
    out = str(tmp_path / "out")
    first = WelllogJob(bundle, out, digitiser=oracle_digitiser).run(read_manifest(uri))
    assert first.count("accepted") == 3
    prefixes = [scan_prefix(out, r) for r in records]
    before = {p: {n: storage.read_bytes(f"{p}/{n}") for n in FILE_NAMES} for p in prefixes}
    mtimes = {p: (tmp_path / p / "curves.las").stat().st_mtime_ns for p in prefixes}

    (tmp_path / prefixes[1] / SUCCESS_NAME).unlink()  # as if killed before its commit ended
    (tmp_path / prefixes[1] / "qc.json").unlink()
    events = []
    again = WelllogJob(bundle, out, digitiser=oracle_digitiser, progress=events.append).run(
        read_manifest(uri)
    )
    assert [o.status for o in again.outcomes] == ["skipped", "accepted", "skipped"]
    assert events[-1].total == 1  # only what was left
    for p in (prefixes[0], prefixes[2]):
        assert (tmp_path / p / "curves.las").stat().st_mtime_ns == mtimes[p]  # not rewritten
    for p in prefixes:
        assert {n: storage.read_bytes(f"{p}/{n}") for n in FILE_NAMES} == before[p]
        assert verify_committed(p) == []


def test_bad_scans_are_rejected_or_failed_and_the_others_go_on(bundle, tmp_path):
    root = str(tmp_path)
    uri, records, _ = make_batch(root, n=2)
    rgb = record(scan_uri=f"{root}/rgb.png", uwi="W-RGB", scan_id="S9")
    (tmp_path / "rgb.png").write_bytes(png_bytes(np.full((3, H, W), 200, dtype=np.uint8)))
    garbage = record(scan_uri=f"{root}/garbage.png", uwi="W-GARBAGE", scan_id="S9")
    (tmp_path / "garbage.png").write_bytes(b"not an image")
    missing = record(scan_uri=f"{root}/missing.png", uwi="W-MISSING", scan_id="S9")
    narrow = record(scan_uri=f"{root}/narrow.png", uwi="W-NARROW", scan_id="S9")
    write_png(narrow.scan_uri, draw_scan(H, 2))  # too few columns for two depth samples
    boom = record(scan_uri=f"{root}/boom.png", uwi="W-BOOM", scan_id="S9")
    write_png(boom.scan_uri, draw_scan(H, W))
    bad_record = manifest_csv([record(scan_uri="x.png", uwi="W-X")]).replace(",1000.0,", ",NA,")
    text = (
        manifest_csv([*records, rgb, garbage, missing, narrow, boom]) + bad_record.split("\n", 1)[1]
    )
    storage.write_text(uri, text)

    def digitiser(images, recs, *, nodata=None):
        if any(r.uwi == "W-BOOM" for r in recs):
            raise RuntimeError("model exploded")
        return oracle_digitiser(images, recs, nodata=nodata)

    summary = WelllogJob(bundle, f"{root}/out", batch_size=3, digitiser=digitiser).run(
        read_manifest(uri)
    )
    status = {o.scan.rsplit("/", 1)[-1]: (o.status, o.reason) for o in summary.outcomes}
    assert status["scan0.png"][0] == status["scan1.png"][0] == "accepted"
    assert status["x.png"][0] == "rejected" and "top_depth is missing" in status["x.png"][1]
    assert status["rgb.png"][0] == "rejected" and "1 channel" in status["rgb.png"][1]
    assert status["garbage.png"][0] == "rejected" and "unreadable" in status["garbage.png"][1]
    assert status["missing.png"][0] == "rejected" and "no such file" in status["missing.png"][1]
    assert status["narrow.png"][0] == "rejected"
    assert "cannot write the curves" in status["narrow.png"][1]
    assert status["boom.png"] == ("failed", "digitising: RuntimeError: model exploded")
    assert not summary.ok
    assert (summary.count("accepted"), summary.count("rejected"), summary.count("failed")) == (
        2,
        5,
        1,
    )


def test_a_scan_the_digitiser_refuses_is_rejected(bundle, tmp_path):
    uri, _, _ = make_batch(str(tmp_path), n=2)

    def digitiser(images, recs, *, nodata=None):
        if len(recs) > 1:
            raise InputError("batch refused")  # falls back to one scan at a time
        if recs[0].scan_id == "S1":
            raise InputError("scan S1 declares 1 curve(s), the model has 2")
        return oracle_digitiser(images, recs, nodata=nodata)

    summary = WelllogJob(bundle, str(tmp_path / "out"), digitiser=digitiser).run(read_manifest(uri))
    assert [o.status for o in summary.outcomes] == ["accepted", "rejected"]
    assert "cannot digitise: scan S1 declares" in summary.outcomes[1].reason
    assert summary.ok  # rejected scans are reported, they do not fail the run


def test_batch_size_must_be_positive(bundle, tmp_path):
    with pytest.raises(InputError, match="batch_size must be positive, 0 is given"):
        WelllogJob(bundle, str(tmp_path), batch_size=0, digitiser=oracle_digitiser)


def test_reading_the_scan_bytes_gives_the_recorded_sha256(bundle, tmp_path):
    import hashlib

    uri, records, images = make_batch(str(tmp_path), n=1)
    WelllogJob(bundle, str(tmp_path / "out"), digitiser=oracle_digitiser).run(read_manifest(uri))
    qc = json.loads(storage.read_bytes(f"{scan_prefix(str(tmp_path / 'out'), records[0])}/qc.json"))
    assert qc["source"]["sha256"] == hashlib.sha256(png_bytes(images[0])).hexdigest()


def test_the_scan_files_nodata_pixels_are_masked(bundle, tmp_path):
    from affine import Affine

    from tilecast.io.raster import Georef, write_raster

    image = draw_scan(H, W, n_curves=1, seed=5)
    strip = image[0, :, 200:260]
    strip[strip != INK[0]] = 7  # torn paper around the curve, recorded as the file's NoData
    rec = record(scan_uri=str(tmp_path / "torn.tif"), bottom=1000.0 + (W - 1) * 0.05, curves=(GR,))
    write_raster(
        rec.scan_uri, image, georef=Georef(crs=None, transform=Affine.identity()), nodata=7
    )
    (tmp_path / "m.csv").write_text(manifest_csv([rec]))
    out = str(tmp_path / "out")
    summary = WelllogJob(bundle, out, digitiser=oracle_digitiser).run(
        read_manifest(str(tmp_path / "m.csv"))
    )
    assert summary.count("accepted") == 1
    las = lasio.read(storage.read_text(f"{scan_prefix(out, rec)}/curves.las"))
    depth = las.index
    torn = (depth >= 1000.0 + 200 * 0.05) & (depth <= 1000.0 + 259 * 0.05)
    # the curve's ink is intact, but it touches missing pixels: a gap, not a reading
    assert np.isnan(las["GR"][torn]).all()
    assert not np.isnan(las["GR"][~torn]).any()
    plain = oracle_curves(image, rec)  # the same pixels read without the file's NoData
    assert not np.isnan(plain.values["GR"]).any()
