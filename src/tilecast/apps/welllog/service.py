"""The HTTP service: POST a scan with its registration, get its curves and the keys written.

FastAPI is the optional extra ``serve``; it is imported only when an app is made, so the rest of
tilecast imports without it. The bundle is loaded (and verified) once, when the app is made.

- ``POST /scans``: JSON ``{"registration": {...}, "image": "<base64 of the image file>"}``. The
  registration is the JSON of the batch layout's ``<name>.json`` (``uwi``, ``scan_id``,
  ``top_depth``, ``bottom_depth``, ``depth_unit``, ``curves``; ``scan_uri`` optional, recorded
  in qc.json, default ``sha256:<digest of the image>``). The scan goes through the same code as
  the batch job and is committed in the same layout under the service's output prefix. Reply
  200: ``{"uwi", "scan_id", "prefix", "keys", "written", "curves"}`` where ``curves`` is the
  committed curves.json document and ``written`` is false when the same scan was already there.
- ``GET /health``, ``GET /contract`` (the bundle's contract and digest).

A bad request gets a 4xx naming the field, ``{"field": ..., "detail": ...}``: 400 when the body is
not a JSON object, 413 when it is too large, 422 when a field is missing or holds a sentinel, the
image cannot be decoded, is too large or does not fit the model; 409 when the scan is already committed with
other content; 503 when the output store fails.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, and
# ``Request`` is imported inside create_app (fastapi is an optional extra)
import base64
import binascii
import hashlib
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from tilecast.apps.welllog.manifest import record_from_json
from tilecast.apps.welllog.pipeline import Digitiser, bundle_digitiser, decode_scan, write_scan
from tilecast.apps.welllog.writeback import ConflictingScanError
from tilecast.bundle import Bundle, load_bundle
from tilecast.errors import InputError, StorageError, TilecastError

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_SCAN_PIXELS = 4 * 12800 * 640


class RequestError(TilecastError, ValueError):
    """A request the service refuses, with the HTTP status and the field at fault."""

    def __init__(self, status: int, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.status, self.field, self.detail = status, field, detail


def parse_request(body: bytes) -> tuple[dict[str, Any], bytes]:
    """(registration fields, image bytes) from a request body; RequestError naming the field."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, "body", f"{len(body)} bytes, at most {MAX_BODY_BYTES} accepted")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, "body", f"not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise RequestError(400, "body", f"expected a JSON object, found {type(payload).__name__}")
    unknown = sorted(set(payload) - {"registration", "image"})
    if unknown:
        raise RequestError(422, unknown[0], "unknown field; expected registration and image")
    for name in ("registration", "image"):
        if payload.get(name) in (None, ""):
            raise RequestError(422, name, "missing")
    registration = payload["registration"]
    if not isinstance(registration, dict):
        raise RequestError(
            422, "registration", f"expected a JSON object, found {type(registration).__name__}"
        )
    if not isinstance(payload["image"], str):
        raise RequestError(422, "image", "expected the image file as a base64 string")
    try:
        image = base64.b64decode(payload["image"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(422, "image", f"not base64 ({exc})") from None
    return registration, image


class WelllogService:
    """The model and output prefix behind the app; one scan is digitised at a time."""

    def __init__(self, bundle: Bundle, out: str, *, digitiser: Digitiser | None = None) -> None:
        self.bundle = bundle
        self.out = out.rstrip("/")
        self.digitiser = digitiser or bundle_digitiser(bundle, batch_size=1)
        self._model_lock = threading.Lock()

    def digitise_and_write(self, body: bytes) -> bytes:
        """The reply body for a POST /scans body; RequestError for anything the client got wrong."""
        fields, data = parse_request(body)
        given = fields.get("scan_uri")
        scan_uri = str(given) if given is not None else f"sha256:{hashlib.sha256(data).hexdigest()}"
        try:
            record = record_from_json(fields, scan_uri=scan_uri)
        except InputError as exc:
            raise RequestError(422, "registration", str(exc)) from None
        try:
            scan = decode_scan(self.bundle, record, data)
        except InputError as exc:
            raise RequestError(422, "image", str(exc)) from None
        if scan.width * scan.height > MAX_SCAN_PIXELS:
            raise RequestError(
                422,
                "image",
                f"{scan.width} x {scan.height} px is more than the {MAX_SCAN_PIXELS} px a scan may "
                "have here (four times the largest scan of the band, 12800 x 640)",
            )
        try:
            with self._model_lock:
                curves = self.digitiser([scan.image], [record], nodata=scan.nodata)[0]
        except InputError as exc:
            raise RequestError(422, "image", f"cannot digitise: {exc}") from None
        try:
            outputs, committed = write_scan(self.out, self.bundle, scan, curves)
        except ConflictingScanError as exc:
            raise RequestError(409, "registration", str(exc)) from None
        except InputError as exc:  # e.g. too few columns for two depth samples
            raise RequestError(422, "image", f"cannot write the curves: {exc}") from None
        head = {
            "uwi": record.uwi,
            "scan_id": record.scan_id,
            "prefix": committed.prefix,
            "keys": list(committed.keys),
            "written": committed.written,
        }
        # the committed curves.json bytes themselves, so the reply is exactly what was stored
        return (
            json.dumps(head)[:-1].encode()
            + b',"curves":'
            + outputs.files["curves.json"].rstrip()
            + b"}"
        )

    def health(self) -> dict[str, Any]:
        contract = self.bundle.contract
        return {
            "status": "ok",
            "model": f"{contract.name} {contract.version}",
            "bundle_digest": self.bundle.digest,
            "out": self.out,
        }

    def contract(self) -> dict[str, Any]:
        return {
            "bundle_digest": self.bundle.digest,
            "contract": self.bundle.contract.model_dump(mode="json"),
        }


def create_app(bundle: Bundle | str, out: str, *, digitiser: Digitiser | None = None) -> "FastAPI":
    """The FastAPI app serving ``bundle`` (loaded and verified now if given as a URI) into ``out``.

    ``digitiser`` replaces the bundle's own (``digitise_many``), e.g. to test the plumbing.
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, Response
        from starlette.concurrency import run_in_threadpool
    except ImportError as exc:  # the optional extra
        raise ImportError(
            "the well-log service needs FastAPI and uvicorn: pip install 'tilecast[serve]'"
        ) from exc

    loaded = load_bundle(bundle) if isinstance(bundle, str) else bundle
    service = WelllogService(loaded, out, digitiser=digitiser)
    app = FastAPI(title="tilecast well-log digitiser", version=loaded.contract.version)
    app.state.service = service

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> JSONResponse:
        log.info("%s %s refused (%d): %s", request.method, request.url.path, exc.status, exc)
        return JSONResponse({"field": exc.field, "detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        log.error("%s %s: output store failed: %s", request.method, request.url.path, exc)
        return JSONResponse({"field": None, "detail": f"output store: {exc}"}, status_code=503)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return service.health()

    @app.get("/contract")
    def contract() -> dict[str, Any]:
        return service.contract()

    @app.post("/scans")
    async def post_scan(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise RequestError(413, "body", f"{declared} bytes, at most {MAX_BODY_BYTES} accepted")
        body = await request.body()
        reply = await run_in_threadpool(service.digitise_and_write, body)
        return Response(content=reply, media_type="application/json")

    return app


class BackgroundServer:
    """The app under uvicorn in a thread of this process (for embedding, tests and benchmarks).

    ``with BackgroundServer(app, port=0) as server: httpx.get(server.url + "/health")``; port 0
    picks a free port.
    """

    def __init__(self, app: "FastAPI", *, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        import uvicorn

        self._socket = socket.socket()
        self._socket.bind((host, port))
        self.host, self.port = host, self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "BackgroundServer":
        import time

        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
