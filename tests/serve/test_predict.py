"""POST /predict: the answers of `tilecast classify` and `tilecast predict`, bitwise, whether a
request runs alone or batched with others (real uvicorn on 127.0.0.1); 422, 413, 503."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import rasterio
from serve_support import RTS_GEOREF, GatedModel, client_for, colour_png, noise_tif

from tilecast.apps.classify import classify
from tilecast.predict.reference import predict_image_file
from tilecast.serve import BackgroundServer, ServeSettings, create_app

pytestmark = [
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]

RED, BLUE, GRAY = (230, 20, 20), (20, 20, 230), (128, 128, 128)


def settings(**changes) -> ServeSettings:
    return ServeSettings(token=None, **changes)


@pytest.fixture(scope="module")
def rts_client(rts_bundle):
    return client_for(create_app(rts_bundle, settings=settings()))


@pytest.fixture(scope="module")
def class_client(classifier):
    return client_for(create_app(classifier, settings=settings()))


def test_a_classification_answer_is_the_row_tilecast_classify_writes(
    class_client, classifier, tmp_path
):
    images = {
        "red.png": colour_png(RED, height=50, width=70),
        "gray.png": colour_png(GRAY, height=32, width=32),
        "blue.png": colour_png(BLUE, height=36, width=40, seed=1),
    }
    paths = []
    for name, data in images.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    run = classify(classifier, paths, batch_size=1)  # what `tilecast classify` runs
    for path, row in zip(paths, run.rows, strict=True):
        with open(path, "rb") as f:
            reply = class_client.post("/predict", params={"name": path}, content=f.read())
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/json"
        assert reply.json() == json.loads(json.dumps(row.record()))
    red = class_client.post("/predict", content=images["red.png"]).json()
    assert red["label"] == "red" and red["input"] == "upload"
    assert red["top_k"][0]["label"] == "red" and (red["width"], red["height"]) == (70, 50)
    assert "resize 70x50->32x32 (fixed, bilinear)" in red["checks"]


def read_tif(data: bytes) -> tuple[dict, dict, bytes]:
    with rasterio.open(io.BytesIO(data)) as src:
        profile = {**src.profile, "descriptions": src.descriptions}
        return profile, src.tags(), src.read().tobytes()


def test_a_segmentation_answer_is_the_geotiff_tilecast_predict_writes(
    rts_client, rts_bundle, tmp_path
):
    data = noise_tif(1)
    (tmp_path / "in.tif").write_bytes(data)
    predict_image_file(rts_bundle, tmp_path / "in.tif", tmp_path / "out.tif")  # `tilecast predict`
    reply = rts_client.post("/predict", content=data, headers={"content-type": "image/tiff"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/tiff"
    served_profile, served_tags, served_pixels = read_tif(reply.content)
    profile, tags, pixels = read_tif((tmp_path / "out.tif").read_bytes())
    assert reply.content == (tmp_path / "out.tif").read_bytes()  # the same file, byte for byte
    assert served_pixels == pixels  # bit for bit
    assert served_profile == profile  # CRS, transform, NoData -1, float32, blocks, descriptions
    assert served_profile["crs"].to_string() == "EPSG:3413"
    assert served_profile["transform"] == RTS_GEOREF.transform
    # every tag as predict writes it, the image's input-drift verdict included (noise is
    # nothing like the demo scenes: flagged, and the answer still given: warn)
    assert served_tags == tags
    assert "std above" in served_tags["tilecast_input_drift"]
    probability = np.frombuffer(pixels, np.float32).reshape(profile["count"], 64, 64)[-1]

    mask = rts_client.post("/predict", params={"format": "png"}, content=data)
    assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"
    assert mask.headers["x-tilecast-crs"] == "EPSG:3413"
    transform = [float(v) for v in mask.headers["x-tilecast-transform"].split(",")]
    assert transform == list(RTS_GEOREF.transform)[:6]
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(mask.content)))
    assert np.array_equal(pixels, np.where(probability >= rts_bundle.threshold, 255, 0))


@pytest.mark.parametrize(
    ("content", "params", "field", "detail"),
    [
        (b"", {}, "image", "body is empty"),
        (b"\x89PNG\r\n\x1a\nnot a png", {}, "image", "cannot open as a raster"),
        (noise_tif(2, channels=1), {}, "image", "the model takes 3 channel(s)"),
        (noise_tif(3), {"format": "json"}, "format", "expected one of ('tif', 'png')"),
    ],
    ids=["empty", "corrupt", "one channel", "format"],
)
def test_a_bad_request_gets_a_422_naming_the_problem(rts_client, content, params, field, detail):
    reply = rts_client.post("/predict", params=params, content=content)
    assert reply.status_code == 422, reply.text
    assert reply.json()["field"] == field and detail in reply.json()["detail"]


def test_bodies_and_images_over_the_limits_are_refused(rts_bundle):
    client = client_for(
        create_app(rts_bundle, settings=settings(max_body_bytes=1000, max_pixels=32 * 32))
    )
    data = noise_tif(4)
    reply = client.post("/predict", content=data)
    assert reply.status_code == 413 and reply.json()["field"] == "body"
    chunked = client.post("/predict", content=iter([data[:600], data[600:]]))  # no length given
    assert chunked.status_code == 413 and "at most 1000" in chunked.json()["detail"]
    small = noise_tif(5, size=40)
    assert len(small) > 1000
    client = client_for(create_app(rts_bundle, settings=settings(max_pixels=32 * 32)))
    reply = client.post("/predict", content=small)
    assert (
        reply.status_code == 422 and "40 x 40 px is more than the 1024 px" in reply.json()["detail"]
    )


def _post_together(url: str, bodies: list[tuple[bytes, dict]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(bodies))

    def post(body):
        with httpx.Client(base_url=url, timeout=120) as client:
            barrier.wait()
            return client.post("/predict", content=body[0], params=body[1])

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


@pytest.mark.parametrize("kind", ["segmentation", "classification"])
def test_batched_answers_equal_answers_alone_bit_for_bit(kind, rts_bundle, classifier):
    if kind == "segmentation":  # two shapes: grouped apart, each group one model call per sample
        bundle = rts_bundle
        bodies = [(noise_tif(10 + i, size=64 if i % 3 else 96), {}) for i in range(8)]
        bodies += [(noise_tif(20, size=64), {"format": "png"})]
    else:
        bundle = classifier
        colours = (RED, BLUE, GRAY)
        bodies = [
            (colour_png(colours[i % 3], height=30 + i, width=40, seed=i), {"name": f"img{i}"})
            for i in range(9)
        ]
    app = create_app(bundle, settings=settings(max_batch=16, max_wait_ms=200))
    with BackgroundServer(app) as server:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            alone = [client.post("/predict", content=b, params=p) for b, p in bodies]
        together = _post_together(server.url, bodies)
    batcher = app.state.serve.batcher
    assert batcher.stats.largest_group > 1, batcher.stats  # some were batched
    for one, many in zip(alone, together, strict=True):
        assert one.status_code == many.status_code == 200, many.text
        assert one.content == many.content
    assert len({r.content for r in together}) == len(bodies)  # all different: none mixed up


def test_a_full_queue_answers_503_with_retry_after(rts_bundle):
    gated = GatedModel(rts_bundle.model)
    bundle = dataclasses.replace(rts_bundle, model=gated)
    app = create_app(
        bundle, settings=settings(max_batch=1, max_wait_ms=0, queue=1, retry_after_s=2)
    )
    batcher = app.state.serve.batcher
    with BackgroundServer(app) as server, ThreadPoolExecutor(2) as pool:
        post = lambda seed: httpx.post(  # noqa: E731
            f"{server.url}/predict", content=noise_tif(seed), timeout=60
        )
        running = pool.submit(post, 30)
        assert gated.started.wait(30)  # the worker is in the model with the first
        waiting = pool.submit(post, 31)
        while batcher.waiting < 1:  # the second is queued: the queue (1) is full
            assert not waiting.done(), waiting.result().text
            threading.Event().wait(0.01)
        refused = post(32)
        gated.release.set()
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json() == {
            "field": None,
            "detail": "1 requests are already waiting for the model",
        }
        assert running.result().status_code == waiting.result().status_code == 200
    assert batcher.stats.refused == 1
