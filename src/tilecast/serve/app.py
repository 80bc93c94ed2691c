"""The FastAPI app for any bundle: POST /predict by the contract's task, GET /health and
GET /contract, and the well-log endpoints (POST /scans) when given an output prefix.

FastAPI is the optional extra ``serve``, imported when an app is made. The bundle is loaded
(and verified) once, then:

- ``POST /predict``: the body is the image file itself (PNG, JPEG, TIFF, GeoTIFF; any
  ``Content-Type``), ``?format=`` picks the reply (:mod:`tilecast.serve.tasks`), ``?name=``
  is the ``input`` of a classification row. Requests are prepared in their own threads and
  batched by :class:`~tilecast.serve.batcher.DynamicBatcher`; a full queue is 503 with
  ``Retry-After``.
- ``GET /health``: :func:`health_payload`, the base fields plus every entry of
  ``ServeState.health`` (a list of functions returning dicts: append one to add a field);
  ``input_drift`` is the pooled verdict over the images served so far (:mod:`tilecast.drift`).
- ``GET /contract``: the contract and the bundle digest.
- ``POST /scans`` with ``welllog_out``: the well-log digitiser (:mod:`tilecast.apps.welllog.service`).

Refusals are ``{"field", "detail"}`` with a 4xx/503 (:mod:`tilecast.serve.errors`); with a
token (:class:`~tilecast.serve.settings.ServeSettings`), anything without it is a bare 401.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, and
# ``Request`` is imported inside create_app (fastapi is an optional extra)
import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tilecast.bundle import Bundle, load_bundle
from tilecast.drift import DriftMonitor
from tilecast.optional import import_optional
from tilecast.serve.auth import BearerTokenMiddleware
from tilecast.serve.batcher import DynamicBatcher
from tilecast.serve.errors import QueueFullError, RequestError
from tilecast.serve.images import IMAGE_TYPES, decode_image
from tilecast.serve.limits import read_body
from tilecast.serve.settings import ServeSettings
from tilecast.serve.tasks import Task, check_format, task_for

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tilecast.apps.welllog.pipeline import Digitiser

log = logging.getLogger(__name__)

HealthContributor = Callable[[], Mapping[str, Any]]


@dataclass(eq=False)
class ServeState:
    """What the app serves with: the bundle, its task, the batcher, the health contributors."""

    bundle: Bundle
    settings: ServeSettings
    task: Task
    batcher: DynamicBatcher
    health: list[HealthContributor] = field(default_factory=list)


def health_payload(state: ServeState) -> dict[str, Any]:
    """GET /health: status, model and digest, then each contributor's fields in order."""
    contract = state.bundle.contract
    payload: dict[str, Any] = {
        "status": "ok",
        "model": f"{contract.name} {contract.version}",
        "bundle_digest": state.bundle.digest,
    }
    for contributor in state.health:
        payload.update(contributor())
    return payload


def drift_health(drift: DriftMonitor) -> dict[str, Any]:
    """The requests' pooled input statistics against training: mode, verdict, flags, table."""
    verdict = drift.verdict()
    return {"mode": drift.mode, "summary": verdict.summary(), **verdict.to_json()}


def contract_payload(bundle: Bundle) -> dict[str, Any]:
    return {"bundle_digest": bundle.digest, "contract": bundle.contract.model_dump(mode="json")}


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "description": "the image file's bytes (PNG, JPEG, TIFF or GeoTIFF)",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES},
    }
}


def create_app(
    bundle: Bundle | str,
    *,
    settings: ServeSettings | None = None,
    welllog_out: str | None = None,
    digitiser: "Digitiser | None" = None,
) -> "FastAPI":
    """The app serving ``bundle`` (loaded and verified now if given as a URI).

    ``welllog_out`` (an output prefix) adds the well-log digitiser's POST /scans, written
    there; ``digitiser`` replaces the bundle's own for it (to test the plumbing).
    """
    import_optional("fastapi", extra="serve", purpose="the tilecast HTTP service")
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    settings = settings or ServeSettings()
    loaded = load_bundle(bundle) if isinstance(bundle, str) else bundle
    task = task_for(loaded)
    batcher = DynamicBatcher(
        task.forward(loaded),
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        queue_size=settings.queue,
    )
    state = ServeState(bundle=loaded, settings=settings, task=task, batcher=batcher)
    drift = DriftMonitor.for_bundle(loaded, mode=settings.input_drift)  # type: ignore[arg-type]
    state.health.append(lambda: {"input_drift": drift_health(drift)})

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        batcher.close()

    title = f"tilecast: {loaded.contract.name} ({loaded.contract.task})"
    app = FastAPI(title=title, version=loaded.contract.version, lifespan=lifespan)
    app.state.serve = state
    if settings.token is not None:
        app.add_middleware(BearerTokenMiddleware, token=settings.token)

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> JSONResponse:
        log.info("%s %s refused (%d): %s", request.method, request.url.path, exc.status, exc)
        return JSONResponse(
            {"field": exc.field, "detail": exc.detail}, status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = [str(part) for part in first.get("loc", ())]
        return JSONResponse(
            {"field": where[-1] if where else None, "detail": first.get("msg", "")},
            status_code=422,
        )

    @app.get("/health")
    def health() -> dict[str, Any]:
        return health_payload(state)

    @app.get("/contract")
    def contract() -> dict[str, Any]:
        return contract_payload(loaded)

    @app.post(
        "/predict",
        openapi_extra=PREDICT_BODY,
        response_class=Response,
        responses={
            200: {
                "description": "classification: the JSON row; segmentation: GeoTIFF or PNG",
                "content": {"application/json": {}, "image/tiff": {}, "image/png": {}},
            },
            413: {"description": "the body is over the size limit"},
            422: {"description": "the image cannot be read or does not fit the model"},
            503: {"description": "the queue is full; retry after Retry-After seconds"},
        },
    )
    async def predict(
        request: Request,
        fmt: str | None = Query(None, alias="format", description=f"one of {task.formats}"),
        name: str = Query("upload", description="the input's name in a classification row"),
    ) -> Response:
        """Predict one image posted as the body (the file's bytes)."""
        reply_format = check_format(task, fmt)
        data = await read_body(request, settings.max_body_bytes)
        decoded = await run_in_threadpool(
            decode_image, loaded, data, name=name, max_pixels=settings.max_pixels, drift=drift
        )
        array = decoded.prepared.array
        try:
            future = batcher.submit(tuple(array.shape), array)
        except QueueFullError as exc:
            raise RequestError(
                503, None, str(exc), headers={"Retry-After": str(settings.retry_after_s)}
            ) from None
        output = await asyncio.wrap_future(future)
        reply = await run_in_threadpool(task.reply, loaded, decoded, output, fmt=reply_format)
        return Response(reply.body, media_type=reply.media_type, headers=reply.headers)

    if welllog_out is not None:
        from tilecast.apps.welllog.service import WelllogService, add_welllog_routes

        service = WelllogService(loaded, welllog_out, digitiser=digitiser, drift=drift)
        add_welllog_routes(app, service)
        state.health.append(lambda: {"out": service.out})
    return app
