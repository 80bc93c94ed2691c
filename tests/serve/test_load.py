"""A small run of bench/serve_load.py: 16 concurrent clients on 127.0.0.1, every answer checked
against its own image's answer alone; a small queue refuses some with 503, nothing else fails."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tilecast.serve import BackgroundServer, ServeSettings, create_app

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def bench_module():
    spec = importlib.util.spec_from_file_location("serve_load", REPO / "bench" / "serve_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_load"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("queue", [64, 2], ids=["roomy queue", "tiny queue"])
def test_sixteen_clients_get_their_own_answers(classifier, queue):
    load = bench_module()
    settings = ServeSettings(token=None, max_batch=8, max_wait_ms=5, queue=queue)
    app = create_app(classifier, settings=settings)
    with BackgroundServer(app) as server:
        contract = app.state.serve.bundle.contract.model_dump(mode="json")
        images = load.make_images(contract, count=8, size=40)
        expected = load.expected_answers(server.url, images, fmt=None, headers={})
        assert len(set(expected)) == len(images)
        report = load.run_load(
            server.url, images, expected, clients=16, requests=2, time_limit_s=60
        )
    assert report.errors == [] and report.mismatches == 0, report.lines()
    assert report.requests == 32 and report.answered + report.refused == 32
    if queue == 64:
        assert report.refused == 0
    assert app.state.serve.batcher.stats.refused == report.refused
