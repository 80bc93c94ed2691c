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

The routes are added to the one service app of :mod:`tilecast.serve` (``tilecast serve BUNDLE
--out PREFIX``), which also serves POST /predict; :func:`create_app` here is that app with the
well-log endpoints, as ``tilecast welllog serve`` starts it.

A bad request gets a 4xx naming the field, ``{"field": ..., "detail": ...}``: 400 when the body is
not a JSON object, 413 when it is too large, 422 when a field is missing or holds a sentinel, the
image cannot be decoded, is too large or does not fit the model; 409 when the scan is already committed with
other content; 503 when the output store fails.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, and
# ``Request`` is imported inside add_welllog_routes (fastapi is an optional extra)
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
from tilecast.bundle import Bundle
from tilecast.drift import DriftMonitor
from tilecast.errors import InputDriftError, InputError, StorageError
from tilecast.serve.errors import RequestError
from tilecast.serve.limits import read_body
from tilecast.serve.server import BackgroundServer

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "MAX_BODY_BYTES",
    "BackgroundServer",
    "RequestError",
    "WelllogService",
    "add_welllog_routes",
    "create_app",
    "parse_request",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_SCAN_PIXELS = 4 * 12800 * 640


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

    def __init__(
        self,
        bundle: Bundle,
        out: str,
        *,
        digitiser: Digitiser | None = None,
        drift: DriftMonitor | None = None,
    ) -> None:
        self.bundle = bundle
        self.drift = drift  # the service's running input statistics (GET /health)
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
        if self.drift is not None:  # in fail mode a scan unlike training is a 422, not digitised
            order = self.bundle.contract.input.channel_order
            try:
                self.drift.observe_alone(scan.image, scan.valid, channel_order=order)
            except InputDriftError as exc:
                raise RequestError(422, "image", str(exc)) from None
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


def add_welllog_routes(app: "FastAPI", service: WelllogService) -> None:
    """POST /scans on ``app`` (a :mod:`tilecast.serve` app, which refuses RequestError)."""
    from fastapi import Request
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        log.error("%s %s: output store failed: %s", request.method, request.url.path, exc)
        return JSONResponse({"field": None, "detail": f"output store: {exc}"}, status_code=503)

    @app.post("/scans")
    async def post_scan(request: Request) -> Response:
        """Digitise one scan (JSON: registration + base64 image) and commit its outputs."""
        body = await read_body(request, MAX_BODY_BYTES)
        reply = await run_in_threadpool(service.digitise_and_write, body)
        return Response(content=reply, media_type="application/json")


def create_app(bundle: Bundle | str, out: str, *, digitiser: Digitiser | None = None) -> "FastAPI":
    """The service app for ``bundle`` (loaded and verified now if given as a URI) with the
    well-log endpoints writing into ``out`` (:func:`tilecast.serve.app.create_app`).

    ``digitiser`` replaces the bundle's own (``digitise_many``), e.g. to test the plumbing.
    """
    from tilecast.serve.app import create_app as create_service_app

    return create_service_app(bundle, welllog_out=out, digitiser=digitiser)
