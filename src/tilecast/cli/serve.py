"""``tilecast serve BUNDLE``: one HTTP service for any bundle (the ``serve`` extra)."""

from __future__ import annotations

import click

from tilecast.cli.options import input_drift_option, reports_errors
from tilecast.serve.settings import TOKEN_VARIABLE, ServeSettings

DEFAULTS = ServeSettings(token=None)


def run_service(
    bundle_uri: str, *, out: str | None, host: str, port: int, settings: ServeSettings
) -> None:
    """Load the bundle, make the app and run it under uvicorn until interrupted."""
    from tilecast.optional import import_optional
    from tilecast.serve.app import create_app

    uvicorn = import_optional("uvicorn", extra="serve", purpose="tilecast serve")
    app = create_app(bundle_uri, settings=settings, welllog_out=out)
    task = app.state.serve.task.formats
    writes = f", writing scans to {out}" if out is not None else ""
    token = f", token required ({TOKEN_VARIABLE})" if settings.token is not None else ""
    click.echo(
        f"serving {bundle_uri} on http://{host}:{port} (POST /predict -> {'|'.join(task)}"
        f"{writes}{token})",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


@click.command()
@click.argument("bundle_uri", metavar="BUNDLE")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--out",
    default=None,
    help="Well-log digitiser: the output prefix (folder, s3://, gs://); adds POST /scans.",
)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_batch,
    show_default=True,
    help="Requests run together at most.",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    default=DEFAULTS.max_wait_ms,
    show_default=True,
    help="How long a batch waits for more requests after its first.",
)
@click.option(
    "--queue",
    type=click.IntRange(min=1),
    default=DEFAULTS.queue,
    show_default=True,
    help="Requests that may wait for the model; beyond, 503 with Retry-After.",
)
@input_drift_option
@reports_errors
def serve(
    bundle_uri: str,
    host: str,
    port: int,
    out: str | None,
    max_batch: int,
    max_wait_ms: float,
    queue: int,
    input_drift: str,
) -> None:
    """Serve BUNDLE over HTTP: POST /predict, GET /health, GET /contract, /docs.

    POST /predict takes an image file as the body: a classification bundle answers the JSON
    row of `tilecast classify`, a segmentation bundle the probability GeoTIFF of `tilecast
    predict` (?format=png: the thresholded mask). With --out, the well-log digitiser's
    POST /scans too. Set TILECAST_API_TOKEN to require `Authorization: Bearer <token>`.
    """
    settings = ServeSettings(
        max_batch=max_batch, max_wait_ms=max_wait_ms, queue=queue, input_drift=input_drift
    )
    run_service(bundle_uri, out=out, host=host, port=port, settings=settings)
