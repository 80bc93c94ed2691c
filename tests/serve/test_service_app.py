"""The app around the endpoints: the bearer token, the OpenAPI schema, /health and /contract,
the well-log endpoints in the same app, and the `tilecast serve` command's wiring."""

from __future__ import annotations

import base64
import sys

import pytest
from click.testing import CliRunner
from serve_support import client_for, noise_tif

from tilecast.cli.main import cli
from tilecast.errors import ContractError
from tilecast.serve import ServeSettings, create_app, health_payload

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(classifier):
    return client_for(create_app(classifier, settings=ServeSettings(token=TOKEN)))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/contract"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/no-such-path"),
        ("POST", "/predict"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "]
)
def test_without_the_token_every_request_gets_401_and_nothing_else(
    guarded, method, path, authorization
):
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = guarded.request(method, path, headers=headers, content=b"x")
    assert reply.status_code == 401
    assert reply.content == b""
    assert reply.headers["www-authenticate"] == "Bearer"


def test_with_the_token_requests_are_served(guarded):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/health", "/contract", "/docs", "/openapi.json"):
        assert guarded.get(path, headers=headers).status_code == 200, path
    reply = guarded.post("/predict", headers=headers, content=noise_tif(1))
    assert reply.status_code == 200 and reply.json()["status"] == "classified"


def test_the_token_comes_from_the_environment(monkeypatch, classifier):
    monkeypatch.setenv("TILECAST_API_TOKEN", TOKEN)
    client = client_for(create_app(classifier))
    assert client.get("/health").status_code == 401
    assert client.get("/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    monkeypatch.setenv("TILECAST_API_TOKEN", "")
    with pytest.raises(ContractError, match="the API token is empty"):
        create_app(classifier)


def test_openapi_lists_the_endpoints_and_health_takes_contributors(classifier):
    app = create_app(classifier, settings=ServeSettings(token=None))
    client = client_for(app)
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/predict", "/health", "/contract"}
    predict = schema["paths"]["/predict"]["post"]
    assert "image/png" in predict["requestBody"]["content"]
    assert {p["name"] for p in predict["parameters"]} == {"format", "name"}
    assert {"413", "422", "503"} <= set(predict["responses"])

    state = app.state.serve
    health = client.get("/health").json()
    assert {k: health[k] for k in ("status", "model", "bundle_digest")} == {
        "status": "ok",
        "model": "tiny-classifier 0.0.1",
        "bundle_digest": classifier.digest,
    }
    assert health["input_drift"]["mode"] == "warn" and health["input_drift"]["pixels"] == 0
    state.health.append(lambda: {"queue": {"waiting": 0}})
    assert client.get("/health").json()["queue"] == {"waiting": 0}
    assert health_payload(state)["queue"] == {"waiting": 0}
    contract = client.get("/contract").json()
    assert contract["bundle_digest"] == classifier.digest
    assert contract["contract"]["task"] == "classification"


def test_a_welllog_digitiser_serves_scans_and_predict_in_one_app(tmp_path_factory, tmp_path):
    from tilecast.apps.welllog.writeback import scan_prefix, verify_committed
    from welllog.welllog_support import (
        draw_scan,
        oracle_digitiser,
        png_bytes,
        record,
        registration_json,
        tiny_welllog_bundle,
    )

    out = str(tmp_path / "scans")
    app = create_app(
        str(tiny_welllog_bundle(tmp_path_factory)),
        settings=ServeSettings(token=None),
        welllog_out=out,
        digitiser=oracle_digitiser,
    )
    client = client_for(app)
    assert {"/scans", "/predict", "/health", "/contract"} <= set(
        client.get("/openapi.json").json()["paths"]
    )
    assert client.get("/health").json()["out"] == out
    rec = record(uwi="42-001-00009", scan_id="S9", top=500.0, bottom=500.0 + 639 * 0.05)
    image = draw_scan(64, 640, seed=9)
    body = {"registration": registration_json(rec), "image": base64.b64encode(png_bytes(image))}
    body["image"] = body["image"].decode()
    reply = client.post("/scans", json=body)
    assert reply.status_code == 200, reply.text
    assert verify_committed(scan_prefix(out, rec)) == []
    assert client.post("/scans", content=b"{nope").json()["field"] == "body"
    probabilities = client.post("/predict", content=png_bytes(image))
    assert (
        probabilities.status_code == 200 and probabilities.headers["content-type"] == "image/tiff"
    )


def test_the_serve_command_makes_the_app_with_its_settings(monkeypatch, classifier_dir):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.delenv("TILECAST_API_TOKEN", raising=False)
    args = ["serve", str(classifier_dir), "--port", "8123", "--max-batch", "4"]
    result = CliRunner().invoke(cli, [*args, "--max-wait-ms", "1.5", "--queue", "7"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)
    settings = served["app"].state.serve.settings
    assert (settings.max_batch, settings.max_wait_ms, settings.queue) == (4, 1.5, 7)
    assert client_for(served["app"]).post("/predict", content=noise_tif(2)).status_code == 200


def test_a_missing_extra_is_named(monkeypatch, classifier):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now fails
    with pytest.raises(ImportError, match=r"pip install 'tilecast\[serve\]'"):
        create_app(classifier)
