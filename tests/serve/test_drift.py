"""Input drift in the service: each segmentation answer carries its image's verdict, GET /health
pools the images served, and ``input_drift="fail"`` answers a flagged image with a 422."""

from __future__ import annotations

import io

import numpy as np
import rasterio
from serve_support import RTS_GEOREF, client_for

from tilecast.demo.scene import generate_scene
from tilecast.io.raster import encode_gtiff
from tilecast.serve.app import create_app
from tilecast.serve.settings import ServeSettings


def _scene_tif(seed: int, *, bgr: bool = False) -> bytes:
    image = generate_scene(seed=seed, height=384, width=384).image
    return encode_gtiff(
        np.ascontiguousarray(image[::-1] if bgr else image),
        georef=RTS_GEOREF,
        nodata=0,
        channel_order="RGB",  # what the file says, whatever its bands hold
    )


def _tag(reply) -> str:
    with rasterio.open(io.BytesIO(reply.content)) as src:
        return src.tags()["tilecast_input_drift"]


def test_health_pools_the_images_and_each_answer_has_its_verdict(rts_bundle):
    client = client_for(create_app(rts_bundle, settings=ServeSettings(token=None)))
    plain = client.post("/predict", content=_scene_tif(3001))
    assert plain.status_code == 200 and _tag(plain).startswith("like training")
    health = client.get("/health").json()["input_drift"]
    assert health["judged"] and not health["drifted"] and health["mode"] == "warn"
    client = client_for(create_app(rts_bundle, settings=ServeSettings(token=None)))
    for seed in (3002, 7):
        swapped = client.post("/predict", content=_scene_tif(seed, bgr=True))
        assert swapped.status_code == 200  # warn: answered
        assert _tag(swapped).startswith("bands look swapped")
    health = client.get("/health").json()["input_drift"]
    assert health["drifted"] and "swapped" in health["summary"]
    assert health["pixels"] > 3 * 1000


def test_fail_mode_refuses_a_flagged_image(rts_bundle):
    settings = ServeSettings(token=None, input_drift="fail")
    client = client_for(create_app(rts_bundle, settings=settings))
    assert client.post("/predict", content=_scene_tif(3001)).status_code == 200
    refused = client.post("/predict", content=_scene_tif(3001, bgr=True))
    assert refused.status_code == 422
    assert refused.json()["field"] == "image"
    assert "input unlike training data: bands look swapped" in refused.json()["detail"]
