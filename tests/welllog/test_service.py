"""The HTTP service, over real HTTP against uvicorn on 127.0.0.1, writing to moto's S3 server:
bad requests get a 4xx naming the field, a served scan equals the batch job's output byte for
byte, and concurrent clients lose no write."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from welllog_support import (
    GR,
    draw_scan,
    manifest_csv,
    oracle_digitiser,
    png_bytes,
    record,
    registration_json,
    tiny_welllog_bundle,
    write_png,
)

from object_stores import free_port
from tilecast.apps.welllog.job import WelllogJob
from tilecast.apps.welllog.manifest import read_manifest
from tilecast.apps.welllog.outputs import FILE_NAMES, SUCCESS_NAME
from tilecast.apps.welllog.service import BackgroundServer, create_app
from tilecast.apps.welllog.writeback import scan_prefix, verify_committed
from tilecast.bundle import load_bundle
from tilecast.io import storage

H, W = 64, 640


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(tiny_welllog_bundle(tmp_path_factory))


@pytest.fixture(scope="module")
def out(s3_bucket):
    return f"{s3_bucket}/service-out"


@pytest.fixture(scope="module")
def server(bundle, out):
    app = create_app(bundle, out, digitiser=oracle_digitiser)
    with BackgroundServer(app) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def body(rec, image: np.ndarray, *, with_uri: bool = False) -> dict[str, object]:
    return {
        "registration": registration_json(rec, with_uri=with_uri),
        "image": base64.b64encode(png_bytes(image)).decode(),
    }


def scan(i: int, **changes):
    rec = record(uwi=f"42-777-{i:05d}", scan_id=f"S{i}", top=500.0, bottom=500.0 + (W - 1) * 0.05)
    return rec.model_copy(update=changes), draw_scan(H, W, seed=i, gaps=[slice(i, i + 30)])


def test_health_and_contract(client, bundle, out):
    health = client.get("/health").json()
    drift = health.pop("input_drift")
    assert health == {
        "status": "ok",
        "model": "welllog-tiny 0.0.1",
        "bundle_digest": bundle.digest,
        "out": out,
    }
    assert drift["mode"] == "warn" and "judged" in drift
    contract = client.get("/contract").json()
    assert contract["bundle_digest"] == bundle.digest
    assert contract["contract"]["input"]["channels"] == 1
    assert contract["contract"]["alignment"]["multiple"] == 32


def test_a_posted_scan_is_digitised_committed_and_returned(client, out):
    rec, image = scan(1)
    reply = client.post("/scans", json=body(rec, image))
    assert reply.status_code == 200, reply.text
    result = reply.json()
    prefix = scan_prefix(out, rec)
    assert result["prefix"] == prefix and result["written"] is True
    assert result["keys"] == [f"{prefix}/{n}" for n in (*FILE_NAMES, SUCCESS_NAME)]
    assert verify_committed(prefix) == []
    assert result["curves"] == json.loads(storage.read_bytes(f"{prefix}/curves.json"))
    assert result["curves"]["channel_order"] == ["DEPT", "GR", "RES"]

    again = client.post("/scans", json=body(rec, image))  # a retry: nothing rewritten
    assert again.status_code == 200
    assert again.json()["written"] is False
    assert again.json()["curves"] == result["curves"]


def test_other_content_for_a_committed_scan_is_a_conflict(client):
    rec, image = scan(2)
    assert client.post("/scans", json=body(rec, image)).status_code == 200
    reply = client.post("/scans", json=body(rec, draw_scan(H, W, seed=99)))
    assert reply.status_code == 409
    assert reply.json()["field"] == "registration"


def _bad_bodies():
    rec, image = scan(3)
    good = body(rec, image)
    reg = good["registration"]
    rgb = np.repeat(image, 3, axis=0)
    return [
        ("not json", b"{nope", 400, "body", "not JSON"),
        ("not an object", b"[1, 2]", 400, "body", "JSON object"),
        ("no registration", {"image": good["image"]}, 422, "registration", "missing"),
        ("no image", {"registration": reg}, 422, "image", "missing"),
        ("unknown field", {**good, "extra": 1}, 422, "extra", "unknown field"),
        ("sentinel depth", {**good, "registration": {**reg, "top_depth": -999.25}}, 422,
         "registration", "top_depth is missing"),
        ("NA string", {**good, "registration": {**reg, "bottom_depth": "NA"}}, 422,
         "registration", "bottom_depth is missing"),
        ("null uwi", {**good, "registration": {**reg, "uwi": None}}, 422, "registration", "uwi"),
        ("no scan_id", {**good, "registration": {k: v for k, v in reg.items() if k != "scan_id"}},
         422, "registration", "scan_id is missing"),
        ("slash in uwi", {**good, "registration": {**reg, "uwi": "a/b"}}, 422, "registration",
         "cannot be used in an output key"),
        ("curve sentinel", {**good, "registration": {**reg, "curves": [
            {"name": "GR", "unit": "gAPI", "left": "None", "right": 150}]}}, 422,
         "registration", "left is missing"),
        ("no curves", {**good, "registration": {**reg, "curves": []}}, 422, "registration",
         "curves"),
        ("registration not object", {**good, "registration": "x"}, 422, "registration",
         "JSON object"),
        ("image not base64", {**good, "image": "***"}, 422, "image", "base64"),
        ("image not a string", {**good, "image": 5}, 422, "image", "base64"),
        ("image undecodable", {**good, "image": base64.b64encode(b"garbage").decode()}, 422,
         "image", "cannot open"),
        ("three channels", {**good, "image": base64.b64encode(png_bytes(rgb)).decode()}, 422,
         "image", "1 channel"),
        ("one pixel row", {**good, "image": base64.b64encode(png_bytes(image[:, :1])).decode()},
         422, "image", "at least 2 rows"),
        ("two columns", {**good, "image": base64.b64encode(png_bytes(image[:, :, :2])).decode()},
         422, "image", "cannot write the curves"),
    ]  # fmt: skip


BAD_BODIES = _bad_bodies()


@pytest.mark.parametrize(
    ("payload", "status", "field", "detail"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_bad_requests_get_a_4xx_naming_the_field(client, payload, status, field, detail):
    if isinstance(payload, bytes):
        reply = client.post("/scans", content=payload, headers={"content-type": "application/json"})
    else:
        reply = client.post("/scans", json=payload)
    assert reply.status_code == status, reply.text
    assert reply.json()["field"] == field
    assert detail in reply.json()["detail"]


def test_a_scan_larger_than_the_limit_is_refused(client):
    rec, _ = scan(4)
    huge = np.full((1, 641, 51201), 255, dtype=np.uint8)  # just over 4 x 12800 x 640 px
    reply = client.post("/scans", json=body(rec, huge))
    assert reply.status_code == 422
    assert reply.json()["field"] == "image"
    assert "51201 x 641 px is more than" in reply.json()["detail"]


def test_a_body_over_the_size_limit_is_refused(client, monkeypatch):
    from tilecast.apps.welllog import service

    monkeypatch.setattr(service, "MAX_BODY_BYTES", 1000)
    rec, image = scan(5)
    reply = client.post("/scans", json=body(rec, image))
    assert reply.status_code == 413
    assert reply.json()["field"] == "body"


def test_a_served_scan_equals_the_batch_job_output_byte_for_byte(client, bundle, out, s3_bucket):
    root = f"{s3_bucket}/equal"
    records, images = [], []
    for i in (10, 11, 12):
        rec, image = scan(i, scan_uri=f"{root}/scans/{i}.png")
        if i == 11:
            rec = rec.model_copy(update={"curves": (GR,)})
            image = draw_scan(H, W, n_curves=1, seed=i)
        write_png(rec.scan_uri, image)
        records.append(rec)
        images.append(image)
    storage.write_text(f"{root}/manifest.csv", manifest_csv(records))
    summary = WelllogJob(bundle, f"{root}/job-out", batch_size=2, digitiser=oracle_digitiser).run(
        read_manifest(f"{root}/manifest.csv")
    )
    assert summary.count("accepted") == 3
    for rec, image in zip(records, images, strict=True):
        reply = client.post("/scans", json=body(rec, image, with_uri=True))
        assert reply.status_code == 200, reply.text
        served, batched = scan_prefix(out, rec), scan_prefix(f"{root}/job-out", rec)
        for name in (*FILE_NAMES, SUCCESS_NAME):
            assert storage.read_bytes(f"{served}/{name}") == storage.read_bytes(
                f"{batched}/{name}"
            ), name


def test_concurrent_clients_lose_no_write(server, out):
    scans = [scan(100 + i) for i in range(12)]

    def client_run(part):
        with httpx.Client(base_url=server.url, timeout=120) as c:
            return [c.post("/scans", json=body(rec, image)) for rec, image in part]

    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = [
            r for part in pool.map(client_run, [scans[i::4] for i in range(4)]) for r in part
        ]
    assert [r.status_code for r in replies] == [200] * len(scans)
    for rec, _ in scans:
        prefix = scan_prefix(out, rec)
        assert verify_committed(prefix) == []
        assert sorted(storage.list_files(prefix)) == sorted([*FILE_NAMES, SUCCESS_NAME])


def test_the_serve_command_serves_over_http(bundle, tmp_path):
    """`tilecast welllog serve` in its own process (the real digitiser, the tiny bundle)."""
    port = free_port()
    out = tmp_path / "served"
    tilecast = str(Path(sys.executable).parent / "tilecast")  # the console script
    cmd = [tilecast, "welllog", "serve", "--bundle", bundle.uri]
    cmd += ["--out", str(out), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        rec, image = scan(7)
        bad = {**body(rec, image), "registration": {**registration_json(rec), "uwi": "NA"}}
        refused = httpx.post(f"{url}/scans", json=bad, timeout=60)
        assert refused.status_code == 422 and "uwi is missing" in refused.json()["detail"]
        reply = httpx.post(f"{url}/scans", json=body(rec, image), timeout=300)
        assert reply.status_code == 200, reply.text
        assert verify_committed(scan_prefix(str(out), rec)) == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)
